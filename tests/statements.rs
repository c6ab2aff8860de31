//! No N+1: listing a page of links with their tags and click totals runs a fixed number of
//! SQL statements, whatever the page size (counted by `common::statements`). One test in
//! this file: the counter is process-global.

mod common;

use chrono::{TimeDelta, Utc};
use snip::domain::code::Code;
use snip::domain::link::RedirectStatus;
use snip::domain::target_url::TargetUrl;
use snip::domain::user::{Email, Role, UserDraft};
use snip::store::sqlite::SqliteStore;
use snip::store::{
    ClickFact, LinkFields, LinkOrder, LinkQuery, LinkRecord, LinkStore, PageRequest, UserStore,
};

use common::statements::{install, statements_of};

#[tokio::test]
async fn listing_links_with_tags_is_a_fixed_number_of_statements() {
    install();

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let now = Utc::now();
    let owner = store
        .create_user(
            &UserDraft {
                email: Email::parse("o@example.com").unwrap(),
                name: String::new(),
                role: Role::Member,
            },
            now,
        )
        .await
        .unwrap();
    let links: Vec<LinkRecord> = (0..150)
        .map(|i| LinkRecord {
            code: Code::generate(7),
            fields: LinkFields {
                url: TargetUrl::from_trusted(format!("https://example.com/{i}")),
                title: Some(format!("link {i}")),
                tags: vec!["all".into(), format!("n{}", i % 5), format!("t{i}")],
                expires_at: None,
                max_clicks: None,
                redirect_status: RedirectStatus::Found,
                password_hash: None,
            },
            owner_id: owner.id,
            clicks: 0,
            created_at: now + TimeDelta::milliseconds(i),
            updated_at: now,
        })
        .collect();
    assert!(
        store
            .insert_links(&links)
            .await
            .unwrap()
            .iter()
            .all(Result::is_ok)
    );
    let clicks: Vec<ClickFact> = (0..9)
        .map(|i| ClickFact {
            event_id: None,
            code: links[if i < 7 { 149 } else { 148 }].code.clone(),
            at: now,
            bot: false,
            visitor: None,
            dims: vec![],
        })
        .collect();
    store.apply_clicks("b1", &clicks).await.unwrap();

    // Make sure the counter sees statements at all, or every count below would be 0.
    let (n, _) = statements_of(store.get_link(&links[0].code)).await;
    assert_eq!(n, 1, "the statement counter does not see sqlx's statements");

    let query = |limit, page| LinkQuery {
        owner_id: owner.id,
        tag: None,
        q: None,
        url: None,
        order: LinkOrder::Newest,
        limit,
        page,
    };
    let mut counts = Vec::new();
    for limit in [1, 10, 100] {
        let (n, page) =
            statements_of(store.list_links(&query(limit, PageRequest::After(None)))).await;
        let page = page.unwrap();
        assert_eq!(page.links.len(), limit as usize);
        // The data really is loaded: newest first, with tags and click totals.
        assert_eq!(page.links[0].code, links[149].code);
        assert_eq!(page.links[0].fields.tags, ["all", "n4", "t149"]);
        assert_eq!(page.links[0].clicks, 7);
        counts.push(n);
    }
    assert_eq!(
        counts,
        [1, 1, 1],
        "cursor listing statements per page size 1, 10, 100"
    );

    let (n, page) = statements_of(store.list_links(&query(100, PageRequest::Offset(0)))).await;
    let page = page.unwrap();
    assert_eq!((page.links.len(), page.total), (100, Some(150)));
    assert_eq!(n, 2, "offset listing: the page and the total");

    let (n, page) = statements_of(store.list_links(&LinkQuery {
        tag: Some("n4".into()),
        q: Some("LINK 1".into()),
        url: None,
        ..query(100, PageRequest::After(None))
    }))
    .await;
    let page = page.unwrap();
    assert!(
        page.links
            .iter()
            .all(|l| l.fields.tags.contains(&"n4".to_owned()))
    );
    assert!(
        page.links
            .iter()
            .all(|l| l.fields.title.as_deref().unwrap().starts_with("link 1"))
    );
    // Titles "link 1", "link 10".."link 19", "link 100".."link 149" with i % 5 == 4.
    assert_eq!(page.links.len(), 12, "14, 19 and 104, 109, .., 149");
    assert_eq!(n, 1, "filtered listing");
}
