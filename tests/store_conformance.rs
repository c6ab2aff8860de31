//! One store suite, instantiated for every backend: each adapter must behave the same
//! through the `LinkStore` and `UserStore` ports.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use snip::domain::code::Code;
use snip::domain::key::{ApiKey, Scopes};
use snip::domain::link::RedirectStatus;
use snip::domain::target_url::TargetUrl;
use snip::domain::user::{Email, Role, UserDraft};
use snip::store::{
    ClickFact, IdempotencySave, LinkCursor, LinkFields, LinkOrder, LinkQuery, LinkRecord,
    LinkStore, NewKey, NewSession, PageRequest, SessionKind, StoreError, StoredResponse, Taken,
    UserStore,
};

/// A backend under test: its two ports, and whatever keeps its database alive.
pub struct Backend {
    links: Arc<dyn LinkStore>,
    users: Arc<dyn UserStore>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let store = snip::store::sqlite::SqliteStore::connect(&format!(
        "sqlite://{}/s.db",
        dir.path().display()
    ))
    .await
    .unwrap();
    let store = Arc::new(store);
    Some(Backend {
        links: store.clone(),
        users: store,
        _guard: Box::new(dir),
    })
}

async fn postgres() -> Option<Backend> {
    let db = common::postgres::TestDb::create().await?;
    let store = Arc::new(
        snip::store::postgres::PgStore::connect(&db.url)
            .await
            .unwrap(),
    );
    Some(Backend {
        links: store.clone(),
        users: store.clone(),
        // Dropping the database (WITH FORCE) also ends the pool's sessions.
        _guard: Box::new(db),
    })
}

async fn sharded() -> Option<Backend> {
    let mut dbs = Vec::new();
    let mut shards = Vec::new();
    for name in ["s0", "s1", "s2"] {
        let db = common::postgres::TestDb::create().await?;
        let store = snip::store::postgres::PgStore::connect(&db.url)
            .await
            .unwrap();
        shards.push(snip::store::sharded::Shard {
            name: name.into(),
            vnodes: 200,
            store: Arc::new(store),
        });
        dbs.push(db);
    }
    let store = Arc::new(snip::store::sharded::ShardedStore::new(shards).unwrap());
    Some(Backend {
        links: store.clone(),
        users: store,
        _guard: Box::new(dbs),
    })
}

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
}

fn fields(url: &str) -> LinkFields {
    LinkFields {
        url: TargetUrl::from_trusted(url.to_owned()),
        title: None,
        tags: vec![],
        expires_at: None,
        max_clicks: None,
        redirect_status: RedirectStatus::Found,
        password_hash: None,
    }
}

fn link(code: &str, owner: i64, at: i64) -> LinkRecord {
    LinkRecord {
        code: Code::from_trusted(code.to_owned()),
        fields: fields(&format!("https://example.com/{code}")),
        owner_id: owner,
        clicks: 0,
        created_at: t(at),
        updated_at: t(at),
    }
}

/// An idempotency record of `owner`'s `key`, made at `at` (ms), replacing one older than a
/// second before.
fn idempotency(owner: i64, key: &str, at: i64) -> IdempotencySave {
    IdempotencySave {
        user_id: owner,
        key: key.into(),
        request_hash: format!("h{at}"),
        response: StoredResponse {
            status: 201,
            location: Some("/x".into()),
            body: vec![0, 1, 2],
        },
        expired_before: t(at - 1_000),
    }
}

fn code(s: &str) -> Code {
    Code::from_trusted(s.to_owned())
}

async fn user(b: &Backend, email: &str) -> i64 {
    let draft = UserDraft {
        email: Email::parse(email).unwrap(),
        name: "N".into(),
        role: Role::Member,
    };
    b.users.create_user(&draft, t(0)).await.unwrap().id
}

fn new_key(user_id: i64) -> (ApiKey, NewKey) {
    let key = ApiKey::generate();
    let nk = NewKey {
        user_id,
        name: "k".into(),
        prefix: key.display_prefix().to_owned(),
        hash: key.hash(),
        scopes: Scopes::default_member(),
    };
    (key, nk)
}

fn query(owner: i64, limit: u32, page: PageRequest) -> LinkQuery {
    LinkQuery {
        owner_id: owner,
        tag: None,
        q: None,
        url: None,
        order: LinkOrder::Newest,
        limit,
        page,
    }
}

macro_rules! store_suite {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            async fn backend() -> Option<Backend> {
                super::$backend().await
            }

            #[tokio::test]
            async fn a_link_round_trips_with_every_field() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let mut l = link("full", owner, 5);
                l.fields = LinkFields {
                    url: TargetUrl::from_trusted("https://example.com/x?y=1".into()),
                    title: Some("Tïtle".into()),
                    tags: vec!["a".into(), "b:c".into()],
                    expires_at: Some(t(99_000)),
                    max_clicks: Some(7),
                    redirect_status: RedirectStatus::Permanent,
                    password_hash: Some("$argon2id$v=19$x".into()),
                };
                b.links.insert_link(&l, None).await.unwrap();
                assert_eq!(b.links.get_link(&l.code).await.unwrap(), Some(l.clone()));
                let r = b.links.get_redirect(&l.code).await.unwrap().unwrap();
                assert_eq!(r.url, l.fields.url);
                assert_eq!(
                    (r.max_clicks(), r.clicks_used(), r.deleted),
                    (Some(7), 0, false)
                );
                assert_eq!(r.expires_at(), Some(t(99_000)));
                assert_eq!(b.links.get_redirect(&code("none")).await.unwrap(), None);
            }

            #[tokio::test]
            async fn concurrent_lookups_each_get_their_own_answer() {
                // Lookups that arrive together may be read together (PostgreSQL reads the
                // lookups waiting in one query): each must still get its own code's row.
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                for i in 0..40 {
                    let mut l = link(&format!("c{i}"), owner, i);
                    l.fields.url = TargetUrl::from_trusted(format!("https://example.com/{i}"));
                    l.fields.max_clicks = (i % 4 == 0).then_some(i);
                    b.links.insert_link(&l, None).await.unwrap();
                }
                for i in (0..40).step_by(5) {
                    b.links
                        .delete_link(&code(&format!("c{i}")), t(100))
                        .await
                        .unwrap();
                }
                let asked: Vec<i64> = (0..400).map(|n| (n * 7) % 50).collect();
                let answers = futures_util::future::join_all(asked.iter().map(|&i| {
                    let links = b.links.clone();
                    async move { links.get_redirect(&code(&format!("c{i}"))).await.unwrap() }
                }))
                .await;
                for (&i, answer) in asked.iter().zip(answers) {
                    if i >= 40 {
                        assert_eq!(answer, None, "c{i}");
                        continue;
                    }
                    let r = answer.unwrap_or_else(|| panic!("c{i} not found"));
                    assert_eq!(r.url.as_str(), format!("https://example.com/{i}"));
                    assert_eq!(r.deleted, i % 5 == 0, "c{i}");
                    assert_eq!(r.max_clicks(), (i % 4 == 0).then_some(i), "c{i}");
                }
            }

            #[tokio::test]
            async fn codes_are_unique_even_after_deletion() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                b.links
                    .insert_link(&link("one", owner, 0), None)
                    .await
                    .unwrap();
                let again = b.links.insert_link(&link("one", owner, 1), None).await;
                assert!(matches!(again, Err(StoreError::Conflict(Taken::Code))));
                b.links.delete_link(&code("one"), t(2)).await.unwrap();
                assert!(matches!(
                    b.links.delete_link(&code("one"), t(3)).await,
                    Err(StoreError::NotFound)
                ));
                let again = b.links.insert_link(&link("one", owner, 4), None).await;
                assert!(matches!(again, Err(StoreError::Conflict(Taken::Code))));
                assert_eq!(b.links.get_link(&code("one")).await.unwrap(), None);
                assert!(
                    b.links
                        .get_redirect(&code("one"))
                        .await
                        .unwrap()
                        .unwrap()
                        .deleted
                );
            }

            #[tokio::test]
            async fn bulk_inserts_fail_item_by_item() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                b.links
                    .insert_link(&link("taken", owner, 0), None)
                    .await
                    .unwrap();
                let res = b
                    .links
                    .insert_links(&[
                        link("b1", owner, 1),
                        link("taken", owner, 1),
                        link("b2", owner, 1),
                    ])
                    .await
                    .unwrap();
                assert!(res[0].is_ok() && res[2].is_ok());
                assert!(matches!(res[1], Err(StoreError::Conflict(Taken::Code))));
                assert!(b.links.get_link(&code("b2")).await.unwrap().is_some());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn max_clicks_is_counted_exactly_under_concurrency() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let mut l = link("lim", owner, 0);
                l.fields.max_clicks = Some(5);
                b.links.insert_link(&l, None).await.unwrap();
                let tasks: Vec<_> = (0..20)
                    .map(|_| {
                        let s = b.links.clone();
                        tokio::spawn(async move { s.consume_click(&code("lim")).await.unwrap() })
                    })
                    .collect();
                let mut granted = 0;
                for task in tasks {
                    granted += usize::from(task.await.unwrap());
                }
                assert_eq!(granted, 5);
                assert_eq!(
                    b.links
                        .get_redirect(&l.code)
                        .await
                        .unwrap()
                        .unwrap()
                        .clicks_used(),
                    5
                );
            }

            #[tokio::test]
            async fn updates_replace_fields_and_tags() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let mut l = link("upd", owner, 0);
                l.fields.tags = vec!["old".into()];
                b.links.insert_link(&l, None).await.unwrap();
                let mut f = fields("https://example.com/new");
                f.tags = vec!["n1".into(), "n2".into()];
                f.title = Some("T".into());
                let got = b.links.update_link(&l.code, &f, t(10)).await.unwrap();
                assert_eq!(got.fields, f);
                assert_eq!((got.created_at, got.updated_at), (t(0), t(10)));
                assert_eq!(b.links.get_link(&l.code).await.unwrap(), Some(got));
                b.links.delete_link(&l.code, t(11)).await.unwrap();
                assert!(matches!(
                    b.links.update_link(&l.code, &f, t(12)).await,
                    Err(StoreError::NotFound)
                ));
            }

            #[tokio::test]
            async fn listing_pages_by_cursor_and_offset_with_filters() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let other = user(&b, "b@example.com").await;
                // 25 links, five to a millisecond, so the cursor needs its code tie-break.
                let mut all = Vec::new();
                for i in 0..25 {
                    let mut l = link(&format!("c{i:02}"), owner, i / 5);
                    l.fields.title = Some(if i % 2 == 0 {
                        "Even".into()
                    } else {
                        "odd".into()
                    });
                    l.fields.tags = vec![format!("m{}", i % 3)];
                    all.push(l);
                }
                assert!(
                    b.links
                        .insert_links(&all)
                        .await
                        .unwrap()
                        .iter()
                        .all(Result::is_ok)
                );
                b.links
                    .insert_link(&link("theirs", other, 100), None)
                    .await
                    .unwrap();
                b.links.delete_link(&code("c24"), t(200)).await.unwrap();

                let mut seen = Vec::new();
                let mut cursor = None;
                loop {
                    let page = b
                        .links
                        .list_links(&query(owner, 4, PageRequest::After(cursor.clone())))
                        .await
                        .unwrap();
                    seen.extend(page.links.iter().map(|l| l.code.to_string()));
                    let Some(last) = page.links.last().filter(|_| page.has_more) else {
                        break;
                    };
                    cursor = Some(LinkCursor {
                        created_at: last.created_at.timestamp_millis(),
                        code: last.code.to_string(),
                    });
                }
                // Newest first; within one millisecond by code.
                let mut expected: Vec<_> = all[..24].iter().collect();
                expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.code.cmp(&b.code)));
                let expected: Vec<String> = expected.iter().map(|l| l.code.to_string()).collect();
                assert_eq!(seen, expected);

                let page = b
                    .links
                    .list_links(&query(owner, 10, PageRequest::Offset(20)))
                    .await
                    .unwrap();
                assert_eq!(page.total, Some(24));
                assert_eq!(page.links.len(), 4);
                assert!(!page.has_more);
                assert_eq!(page.links[0].code.to_string(), expected[20]);

                let tagged = b
                    .links
                    .list_links(&LinkQuery {
                        tag: Some("m1".into()),
                        ..query(owner, 100, PageRequest::Offset(0))
                    })
                    .await
                    .unwrap();
                assert_eq!(tagged.total, Some(8), "c01, c04, .., c22");
                let texted = b
                    .links
                    .list_links(&LinkQuery {
                        q: Some("EVEN".into()),
                        ..query(owner, 100, PageRequest::Offset(0))
                    })
                    .await
                    .unwrap();
                assert_eq!(texted.total, Some(12), "even titles, c24 deleted");
                let by_code = b
                    .links
                    .list_links(&LinkQuery {
                        q: Some("c1".into()),
                        ..query(owner, 100, PageRequest::Offset(0))
                    })
                    .await
                    .unwrap();
                assert_eq!(by_code.total, Some(10));
            }

            #[tokio::test]
            async fn idempotency_keys_are_saved_with_the_link() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let save = |key: &str, at: i64| idempotency(owner, key, at);
                b.links
                    .insert_link(&link("i1", owner, 0), Some(&save("k", 0)))
                    .await
                    .unwrap();
                let rec = b
                    .links
                    .get_idempotency(owner, "k", t(-5))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(rec.request_hash, "h0");
                assert_eq!(rec.response.unwrap().body, vec![0, 1, 2]);
                // A live key refuses a second use, and nothing of that request is written.
                let again = b
                    .links
                    .insert_link(&link("i2", owner, 10), Some(&save("k", 10)))
                    .await;
                assert!(matches!(
                    again,
                    Err(StoreError::Conflict(Taken::IdempotencyKey))
                ));
                assert_eq!(b.links.get_link(&code("i2")).await.unwrap(), None);
                // Past the horizon the key is forgotten and may be used again.
                assert!(
                    b.links
                        .get_idempotency(owner, "k", t(1))
                        .await
                        .unwrap()
                        .is_none()
                );
                b.links
                    .insert_link(&link("i3", owner, 5_000), Some(&save("k", 5_000)))
                    .await
                    .unwrap();
                let rec = b
                    .links
                    .get_idempotency(owner, "k", t(0))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(rec.request_hash, "h5000");
            }

            #[tokio::test]
            async fn expired_idempotency_records_are_purged_and_live_ones_kept() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                let save = |key: &str, at: i64| idempotency(owner, key, at);
                for (i, at) in [0, 1_000, 2_000, 9_000].into_iter().enumerate() {
                    b.links
                        .insert_link(
                            &link(&format!("p{i}x"), owner, at),
                            Some(&save(&format!("k{i}"), at)),
                        )
                        .await
                        .unwrap();
                }
                assert_eq!(b.links.purge_idempotency(t(2_000)).await.unwrap(), 2);
                for (i, kept) in [false, false, true, true].into_iter().enumerate() {
                    let rec = b
                        .links
                        .get_idempotency(owner, &format!("k{i}"), t(-1))
                        .await
                        .unwrap();
                    assert_eq!(rec.is_some(), kept, "k{i}");
                }
                // The links themselves stay.
                assert!(b.links.get_link(&code("p0x")).await.unwrap().is_some());
                assert_eq!(b.links.purge_idempotency(t(2_000)).await.unwrap(), 0);
            }

            #[tokio::test]
            async fn clicks_add_up_per_link() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "a@example.com").await;
                b.links
                    .insert_link(&link("ck", owner, 0), None)
                    .await
                    .unwrap();
                let click =
                    |id: &str, at: DateTime<Utc>, bot: bool, visitor: &str, browser: &str| {
                        ClickFact {
                            event_id: (!id.is_empty()).then(|| id.to_owned()),
                            code: code("ck"),
                            at,
                            bot,
                            visitor: (!bot).then(|| visitor.to_owned()),
                            dims: if bot {
                                vec![]
                            } else {
                                vec![("browser", browser.to_owned()), ("referrer", "t.co".into())]
                            },
                        }
                    };
                let batch = vec![
                    click("e1", t(0), false, "v1", "Chrome"),
                    click("e2", t(1), false, "v1", "Chrome"),
                    click("e3", t(2), true, "", ""),
                    click("e4", t(0) + TimeDelta::hours(1), false, "v2", "Firefox"),
                    click("e4", t(0) + TimeDelta::hours(1), false, "v2", "Firefox"),
                ];
                assert_eq!(
                    b.links.apply_clicks("b1", &batch).await.unwrap(),
                    4,
                    "e4 twice in one batch"
                );
                // The same batch again (a retry after a lost commit acknowledgement) adds nothing.
                assert_eq!(b.links.apply_clicks("b1", &batch).await.unwrap(), 0);
                // Its events redelivered in another batch add nothing either.
                assert_eq!(b.links.apply_clicks("b2", &batch[1..]).await.unwrap(), 0);
                // Events without ids of their own count once per batch id.
                let anonymous = vec![click("", t(3), true, "", "")];
                assert_eq!(b.links.apply_clicks("b3", &anonymous).await.unwrap(), 1);
                assert_eq!(b.links.apply_clicks("b3", &anonymous).await.unwrap(), 0);
                assert_eq!(
                    b.links.get_link(&code("ck")).await.unwrap().unwrap().clicks,
                    5
                );
                let stats = b
                    .links
                    .click_stats(&code("ck"), t(0), t(0) + TimeDelta::days(1), 3_600_000)
                    .await
                    .unwrap();
                let h0 = t(0).timestamp_millis() - t(0).timestamp_millis() % 3_600_000;
                assert_eq!(stats.series, vec![(h0, 4, 2), (h0 + 3_600_000, 1, 0)]);
                assert_eq!(stats.unique_visitors, 2);
                let mut dims = stats.dims.clone();
                dims.sort();
                let expected: Vec<(String, String, i64)> = vec![
                    ("browser".into(), "Chrome".into(), 2),
                    ("browser".into(), "Firefox".into(), 1),
                    ("referrer".into(), "t.co".into(), 3),
                ];
                assert_eq!(dims, expected);
                let salt = b.links.daily_salt(86_400_000, "first").await.unwrap();
                assert_eq!(salt, "first");
                assert_eq!(
                    b.links.daily_salt(86_400_000, "second").await.unwrap(),
                    "first"
                );
                assert_eq!(
                    b.links.daily_salt(2 * 86_400_000, "next").await.unwrap(),
                    "next"
                );
                // Yesterday's salt is gone: asking again makes a new one.
                assert_eq!(
                    b.links.daily_salt(86_400_000, "again").await.unwrap(),
                    "again"
                );
                b.links.ping().await.unwrap();
            }

            #[tokio::test]
            async fn links_list_most_clicked_first_by_offset() {
                let Some(b) = backend().await else { return };
                let owner = user(&b, "order@example.com").await;
                for (i, c) in ["o1", "o2", "o3", "o4"].into_iter().enumerate() {
                    b.links
                        .insert_link(&link(c, owner, i as i64), None)
                        .await
                        .unwrap();
                }
                let facts: Vec<ClickFact> = [("o2", 3), ("o4", 1)]
                    .into_iter()
                    .flat_map(|(c, n)| {
                        (0..n).map(move |_| ClickFact {
                            event_id: None,
                            code: code(c),
                            at: t(10),
                            bot: false,
                            visitor: None,
                            dims: vec![],
                        })
                    })
                    .collect();
                b.links.apply_clicks("order", &facts).await.unwrap();
                let page = |offset| LinkQuery {
                    order: LinkOrder::MostClicked,
                    ..query(owner, 2, PageRequest::Offset(offset))
                };
                let codes = |p: &snip::store::LinkPage| {
                    p.links
                        .iter()
                        .map(|l| l.code.to_string())
                        .collect::<Vec<_>>()
                };
                let first = b.links.list_links(&page(0)).await.unwrap();
                assert_eq!(codes(&first), ["o2", "o4"]);
                assert_eq!((first.links[0].clicks, first.total), (3, Some(4)));
                assert!(first.has_more);
                // Links without clicks follow, newest first.
                let second = b.links.list_links(&page(2)).await.unwrap();
                assert_eq!(codes(&second), ["o3", "o1"]);
                assert!(!second.has_more);
            }

            #[tokio::test]
            async fn sessions_and_passwords_round_trip_and_end() {
                let Some(b) = backend().await else { return };
                let a = user(&b, "sess-a@example.com").await;
                let other = user(&b, "sess-b@example.com").await;
                assert_eq!(b.users.password_hash(a).await.unwrap(), None);
                b.users
                    .set_password(a, "$argon2id$v=19$h", t(1))
                    .await
                    .unwrap();
                assert_eq!(
                    b.users.password_hash(a).await.unwrap().as_deref(),
                    Some("$argon2id$v=19$h")
                );
                assert!(matches!(
                    b.users.set_password(999_999, "x", t(1)).await,
                    Err(StoreError::NotFound)
                ));
                let new = |hash: &str, user_id, kind| NewSession {
                    token_hash: hash.into(),
                    user_id,
                    kind,
                    csrf: format!("csrf-{hash}"),
                    expires_at: t(1_000_000),
                };
                for (hash, user_id, kind) in [
                    ("s1", a, SessionKind::Web),
                    ("s2", a, SessionKind::Web),
                    ("l1", a, SessionKind::Link),
                    ("s3", other, SessionKind::Web),
                ] {
                    b.users
                        .create_session(&new(hash, user_id, kind), t(10))
                        .await
                        .unwrap();
                }
                let (u, s) = b.users.session("s1").await.unwrap().unwrap();
                assert_eq!(u.id, a);
                assert_eq!(s.kind, SessionKind::Web);
                assert_eq!(s.csrf, "csrf-s1");
                assert_eq!(
                    (s.created_at, s.seen_at, s.expires_at),
                    (t(10), t(10), t(1_000_000))
                );
                assert_eq!(
                    b.users.session("l1").await.unwrap().unwrap().1.kind,
                    SessionKind::Link
                );
                assert!(b.users.session("nope").await.unwrap().is_none());
                // Use is recorded at most once a minute.
                b.users.touch_session("s1", t(30)).await.unwrap();
                assert_eq!(
                    b.users.session("s1").await.unwrap().unwrap().1.seen_at,
                    t(10)
                );
                b.users.touch_session("s1", t(70_010)).await.unwrap();
                assert_eq!(
                    b.users.session("s1").await.unwrap().unwrap().1.seen_at,
                    t(70_010)
                );
                // A link is used up once.
                assert!(b.users.end_session("l1").await.unwrap());
                assert!(!b.users.end_session("l1").await.unwrap());
                // Everywhere but here: only that user's, only the others.
                assert_eq!(b.users.end_sessions_of(a, "s1").await.unwrap(), 1);
                assert!(b.users.session("s1").await.unwrap().is_some());
                assert!(b.users.session("s2").await.unwrap().is_none());
                assert!(b.users.session("s3").await.unwrap().is_some());
                // A deleted user's sessions end with them.
                b.users.delete_user(other, t(200)).await.unwrap();
                assert!(b.users.session("s3").await.unwrap().is_none());
                // Expired ones are purged.
                b.users
                    .create_session(
                        &NewSession {
                            expires_at: t(50),
                            ..new("old", a, SessionKind::Web)
                        },
                        t(10),
                    )
                    .await
                    .unwrap();
                assert_eq!(b.users.purge_sessions(t(60)).await.unwrap(), 1);
                assert!(b.users.session("old").await.unwrap().is_none());
                assert!(b.users.session("s1").await.unwrap().is_some());
            }

            #[tokio::test]
            async fn users_are_unique_by_live_email() {
                let Some(b) = backend().await else { return };
                let a = user(&b, "a@example.com").await;
                let draft = |e: &str| UserDraft {
                    email: Email::parse(e).unwrap(),
                    name: String::new(),
                    role: Role::Member,
                };
                assert!(matches!(
                    b.users.create_user(&draft("a@example.com"), t(1)).await,
                    Err(StoreError::Conflict(Taken::Email))
                ));
                let c = user(&b, "c@example.com").await;
                assert!(matches!(
                    b.users.update_user(c, &draft("a@example.com"), t(2)).await,
                    Err(StoreError::Conflict(Taken::Email))
                ));
                let renamed = b
                    .users
                    .update_user(c, &draft("c2@example.com"), t(3))
                    .await
                    .unwrap();
                assert_eq!(renamed.email.as_str(), "c2@example.com");
                b.users.delete_user(a, t(4)).await.unwrap();
                assert_eq!(b.users.get_user(a).await.unwrap(), None);
                // The address is free again once its user is gone.
                b.users
                    .create_user(&draft("a@example.com"), t(5))
                    .await
                    .unwrap();
                let found = b
                    .users
                    .find_user_by_email(&Email::parse("a@example.com").unwrap())
                    .await
                    .unwrap();
                assert_ne!(found.unwrap().id, a);
            }

            #[tokio::test]
            async fn users_list_in_id_order() {
                let Some(b) = backend().await else { return };
                let mut ids = Vec::new();
                for i in 0..7 {
                    ids.push(user(&b, &format!("u{i}@example.com")).await);
                }
                let (first, more) = b.users.list_users(None, 4).await.unwrap();
                assert!(more);
                let (rest, more) = b.users.list_users(Some(first[3].id), 4).await.unwrap();
                assert!(!more);
                let got: Vec<i64> = first.iter().chain(&rest).map(|u| u.id).collect();
                assert_eq!(got, ids);
            }

            #[tokio::test]
            async fn keys_authenticate_until_revoked_or_their_user_is_deleted() {
                let Some(b) = backend().await else { return };
                let a = user(&b, "a@example.com").await;
                let (k1, nk1) = new_key(a);
                let (k2, nk2) = new_key(a);
                let r1 = b.users.create_key(&nk1, t(0)).await.unwrap();
                b.users.create_key(&nk2, t(1)).await.unwrap();
                let (u, k) = b.users.authenticate(&k1.hash()).await.unwrap().unwrap();
                assert_eq!(
                    (u.id, k.id, k.scopes.clone()),
                    (a, r1.id, Scopes::default_member())
                );
                assert_eq!(b.users.list_keys(a).await.unwrap().len(), 2);
                b.users.touch_key(r1.id, t(100_000)).await.unwrap();
                let (_, k) = b.users.authenticate(&k1.hash()).await.unwrap().unwrap();
                assert_eq!(k.last_used_at, Some(t(100_000)));
                b.users.revoke_key(a, r1.id, t(2)).await.unwrap();
                assert!(b.users.authenticate(&k1.hash()).await.unwrap().is_none());
                assert!(matches!(
                    b.users.revoke_key(a, r1.id, t(3)).await,
                    Err(StoreError::NotFound)
                ));
                b.users.delete_user(a, t(4)).await.unwrap();
                assert!(b.users.authenticate(&k2.hash()).await.unwrap().is_none());
            }

            #[tokio::test]
            async fn bootstrap_creates_the_first_admin_only_once() {
                let Some(b) = backend().await else { return };
                let admin = UserDraft {
                    email: Email::parse("admin@localhost").unwrap(),
                    name: "A".into(),
                    role: Role::Admin,
                };
                let (key, nk) = new_key(0);
                assert!(b.users.bootstrap_admin(&admin, &nk, t(0)).await.unwrap());
                let (_, nk2) = new_key(0);
                assert!(!b.users.bootstrap_admin(&admin, &nk2, t(1)).await.unwrap());
                let (u, _) = b.users.authenticate(&key.hash()).await.unwrap().unwrap();
                assert_eq!(u.role, Role::Admin);
            }

            #[tokio::test]
            async fn deleting_a_users_links_returns_their_codes() {
                let Some(b) = backend().await else { return };
                let a = user(&b, "a@example.com").await;
                let other = user(&b, "b@example.com").await;
                b.links
                    .insert_links(&[link("d1", a, 0), link("d2", a, 1), link("keep", other, 2)])
                    .await
                    .unwrap();
                let mut codes = b.links.delete_links_of(a, t(5)).await.unwrap();
                codes.sort();
                assert_eq!(codes, vec![code("d1"), code("d2")]);
                assert!(b.links.get_link(&code("keep")).await.unwrap().is_some());
            }
        }
    };
}

store_suite!(sqlite);
store_suite!(postgres);
store_suite!(sharded);

/// Closing the SQLite store closes its lookup connections first, so that the last
/// connection checkpoints the WAL into the database file and removes it.
#[tokio::test]
async fn closing_sqlite_leaves_every_commit_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        snip::store::sqlite::SqliteStore::connect(&format!(
            "sqlite://{}/s.db",
            dir.path().display()
        ))
        .await
        .unwrap(),
    );
    let b = Backend {
        links: store.clone(),
        users: store.clone(),
        _guard: Box::new(()),
    };
    let owner = user(&b, "a@example.com").await;
    b.links
        .insert_link(&link("kept", owner, 0), None)
        .await
        .unwrap();
    assert!(b.links.get_redirect(&code("kept")).await.unwrap().is_some());
    store.close().await;
    let wal = dir.path().join("s.db-wal");
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(left, 0, "the WAL still holds {left} bytes after close");
    assert!(
        b.links.get_redirect(&code("kept")).await.is_err(),
        "a closed store still answers lookups"
    );
}
