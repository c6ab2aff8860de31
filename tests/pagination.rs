//! Listing links against docs/api.md: cursor and offset modes agree, order is newest
//! first, filters work in both, bad parameters are refused, and a cursor walk is stable
//! while links are being added.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use chrono::Duration;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SEEDED: usize = 250;
const BATCH: usize = 50;

/// What the seed gave each link, by index.
struct Seeded {
    /// Codes by seed index.
    codes: Vec<String>,
}

impl Seeded {
    fn all(&self) -> BTreeSet<String> {
        self.codes.iter().cloned().collect()
    }

    fn matching(&self, pred: impl Fn(usize) -> bool) -> BTreeSet<String> {
        self.codes
            .iter()
            .enumerate()
            .filter(|(i, _)| pred(*i))
            .map(|(_, c)| c.clone())
            .collect()
    }
}

/// The create body of seed link `i`: every 5th is tagged `five` (and the next `fives`,
/// so `tag=` must match exactly); `needle` is in the url when `i % 10 == 3` and in the
/// title when `i % 10 == 5`.
fn seed_item(i: usize) -> Value {
    let url = if i % 10 == 3 {
        format!("https://example.com/item/{i}/needle")
    } else {
        format!("https://example.com/item/{i}")
    };
    let title = if i % 10 == 5 {
        "A NEEDLE in the title".to_string()
    } else {
        format!("item {i}")
    };
    let tags: Vec<&str> = match i % 5 {
        0 => vec!["five"],
        1 => vec!["fives"],
        _ => vec![],
    };
    json!({ "url": url, "title": title, "tags": tags })
}

/// Creates the 250 seed links in bulk batches of 50, one minute apart, so that the
/// list has both distinct `created_at`s and long runs of equal ones.
async fn seed(app: &TestApp, key: &str) -> Seeded {
    let mut codes = Vec::with_capacity(SEEDED);
    for batch in 0..SEEDED / BATCH {
        let batch_items = (batch * BATCH..(batch + 1) * BATCH)
            .map(seed_item)
            .collect();
        for result in app.bulk(key, batch_items).await {
            assert_eq!(result["status"], 201, "{result}");
            codes.push(str_field(&result["link"], "code"));
        }
        app.clock.advance(Duration::minutes(1));
    }
    assert_eq!(codes.len(), SEEDED);
    Seeded { codes }
}

/// Walks offset mode page by page until an empty page; checks `page`, `limit`, `total`.
async fn walk_offset(app: &TestApp, query: &str, key: &str, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut total = None;
    for page_no in 1..=SEEDED + 2 {
        let filters = if query.is_empty() {
            String::new()
        } else {
            format!("&{query}")
        };
        let path = format!("/api/v1/links?page={page_no}&limit={limit}{filters}");
        let page = expect_json(app.get(&path, key).await, StatusCode::OK).await;
        assert_eq!(page["page"], page_no, "{page}");
        assert_eq!(page["limit"], limit, "{page}");
        let this_total = int_field(&page, "total");
        assert_eq!(
            *total.get_or_insert(this_total),
            this_total,
            "total changed"
        );
        let data = items(&page);
        if data.is_empty() {
            assert_eq!(all.len() as i64, this_total, "pages do not add up to total");
            return all;
        }
        assert!(data.len() <= limit, "{page}");
        all.extend(data);
    }
    panic!("offset walk did not end");
}

/// Newest first: `created_at` descending, ties broken by `code` in one direction.
fn assert_newest_first(links: &[Value]) {
    let mut tie_order: Option<Ordering> = None;
    for pair in links.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // Same fixed-width RFC 3339 format: string order is time order.
        let (ta, tb) = (str_field(a, "created_at"), str_field(b, "created_at"));
        assert!(ta >= tb, "not newest first: {a} before {b}");
        if ta == tb {
            let order = str_field(a, "code").cmp(&str_field(b, "code"));
            assert_ne!(order, Ordering::Equal, "duplicate: {a}");
            assert_eq!(
                *tie_order.get_or_insert(order),
                order,
                "ties are not ordered by code consistently: {a} then {b}"
            );
        }
    }
}

fn assert_unique(codes: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = codes.iter().cloned().collect();
    assert_eq!(set.len(), codes.len(), "duplicates in {codes:?}");
    set
}

#[tokio::test]
async fn cursor_and_offset_walks_see_every_link_once_newest_first() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("p@example.com").await;
    let seeded = seed(&app, &key).await;

    let by_cursor = app.walk_cursor("/api/v1/links?limit=7", &key, 100).await;
    let by_offset = walk_offset(&app, "", &key, 7).await;
    assert_eq!(by_cursor.len(), SEEDED);
    assert_eq!(by_offset.len(), SEEDED);
    assert_eq!(assert_unique(&codes(&by_cursor)), seeded.all());
    assert_eq!(assert_unique(&codes(&by_offset)), seeded.all());
    assert_newest_first(&by_cursor);
    assert_newest_first(&by_offset);
    assert_eq!(
        codes(&by_cursor),
        codes(&by_offset),
        "the two modes disagree on order"
    );

    // Newest batch first: the first 50 are the last batch seeded.
    let last_batch: BTreeSet<String> = seeded.codes[SEEDED - BATCH..].iter().cloned().collect();
    let first_50: BTreeSet<String> = codes(&by_cursor[..BATCH]).into_iter().collect();
    assert_eq!(first_50, last_batch);

    // Items carry the full link JSON.
    let by_code: HashMap<String, &Value> = by_cursor
        .iter()
        .map(|l| (str_field(l, "code"), l))
        .collect();
    let sample = &seeded.codes[3];
    assert_eq!(by_code[sample]["url"], "https://example.com/item/3/needle");
    assert_eq!(by_code[sample]["title"], "item 3");
    assert_eq!(by_code[&seeded.codes[5]]["tags"], json!(["five"]));
}

#[tokio::test]
async fn page_sizes_default_to_20_and_pages_are_full_until_the_last() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("p@example.com").await;
    seed(&app, &key).await;

    let (first, next) = app.cursor_page("/api/v1/links?", &key, None).await;
    assert_eq!(first.len(), 20);
    assert!(next.is_some());

    let (page, next) = app.cursor_page("/api/v1/links?limit=100", &key, None).await;
    assert_eq!(page.len(), 100);
    let (page, next) = app
        .cursor_page("/api/v1/links?limit=100", &key, next.as_deref())
        .await;
    assert_eq!(page.len(), 100);
    let (page, next) = app
        .cursor_page("/api/v1/links?limit=100", &key, next.as_deref())
        .await;
    assert_eq!(page.len(), 50);
    assert_eq!(next, None);

    let last = expect_json(
        app.get("/api/v1/links?page=36&limit=7", &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&last).len(), 250 - 35 * 7);
    assert_eq!(last["total"], 250);
    let beyond = expect_json(
        app.get("/api/v1/links?page=37&limit=7", &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&beyond).len(), 0);
    assert_eq!(beyond["total"], 250);
}

#[tokio::test]
async fn tag_and_q_filter_in_both_modes() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("p@example.com").await;
    let seeded = seed(&app, &key).await;
    let some_code = seeded.codes[42].clone();

    let cases: Vec<(String, BTreeSet<String>)> = vec![
        ("tag=five".into(), seeded.matching(|i| i % 5 == 0)),
        ("tag=fives".into(), seeded.matching(|i| i % 5 == 1)),
        ("tag=fiv".into(), BTreeSet::new()),
        ("tag=nope".into(), BTreeSet::new()),
        (
            "q=needle".into(),
            seeded.matching(|i| i % 10 == 3 || i % 10 == 5),
        ),
        (
            "q=NeEdLe".into(),
            seeded.matching(|i| i % 10 == 3 || i % 10 == 5),
        ),
        ("tag=five&q=needle".into(), seeded.matching(|i| i % 10 == 5)),
        ("q=item%2F123".into(), seeded.matching(|i| i == 123)),
        (format!("q={some_code}"), [some_code.clone()].into()),
    ];
    for (query, expected) in &cases {
        let by_cursor = app
            .walk_cursor(&format!("/api/v1/links?{query}&limit=7"), &key, 100)
            .await;
        let by_offset = walk_offset(&app, query, &key, 7).await;
        assert_eq!(
            &assert_unique(&codes(&by_cursor)),
            expected,
            "cursor, {query}"
        );
        assert_eq!(
            &assert_unique(&codes(&by_offset)),
            expected,
            "offset, {query}"
        );
        assert_eq!(codes(&by_cursor), codes(&by_offset), "{query}");
        assert_newest_first(&by_cursor);
    }

    // Case-insensitive on the code too: the lower-cased code still finds it.
    let lower = some_code.to_ascii_lowercase();
    let found = app
        .walk_cursor(&format!("/api/v1/links?q={lower}&limit=100"), &key, 10)
        .await;
    assert!(codes(&found).contains(&some_code), "q={lower}");
}

#[tokio::test]
async fn bad_cursors_and_limits_are_refused() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("p@example.com").await;
    seed(&app, &key).await;

    for cursor in ["not-a-cursor", "%00%01", "eyJ4Ijp0cnVlfQ"] {
        let path = format!("/api/v1/links?limit=7&cursor={cursor}");
        expect_problem(app.get(&path, &key).await, StatusCode::BAD_REQUEST).await;
    }
    let four_xx = [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY];
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "page=0&limit=7",
        "page=-1&limit=7",
        "page=1&limit=0",
        "page=1&limit=101",
    ] {
        let resp = app.get(&format!("/api/v1/links?{query}"), &key).await;
        let status = resp.status();
        assert!(four_xx.contains(&status), "{query}: {status}");
        expect_problem(resp, status).await;
    }
    // The boundaries themselves are fine.
    let (page, _) = app.cursor_page("/api/v1/links?limit=1", &key, None).await;
    assert_eq!(page.len(), 1);
    let (page, _) = app.cursor_page("/api/v1/links?limit=100", &key, None).await;
    assert_eq!(page.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_walk_is_stable_while_links_are_added() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("p@example.com").await;
    let seeded = seed(&app, &key).await;
    // New links share the newest batch's created_at, so they land among its ties.
    app.clock.advance(Duration::minutes(-1));

    let walker = async {
        let mut seen = Vec::new();
        let mut between = 0;
        let mut cursor: Option<String> = None;
        for step in 0..200 {
            let (data, next) = app
                .cursor_page("/api/v1/links?limit=7", &key, cursor.as_deref())
                .await;
            seen.extend(data);
            // Also add a link between every two pages, so inserts surely fall mid-walk.
            app.create_link_to(&key, &format!("https://example.com/between/{step}"))
                .await;
            between += 1;
            match next {
                Some(next) => cursor = Some(next),
                None => return (seen, between),
            }
        }
        panic!("the walk did not end");
    };
    let inserter = async {
        let mut added = Vec::new();
        for i in 0..40 {
            added.push(
                app.create_link_to(&key, &format!("https://example.com/during/{i}"))
                    .await,
            );
        }
        added
    };
    let ((seen, between), added) = tokio::join!(walker, inserter);

    let seen_codes = codes(&seen);
    let seen_set = assert_unique(&seen_codes);
    let missing: Vec<_> = seeded.all().difference(&seen_set).cloned().collect();
    assert!(
        missing.is_empty(),
        "links seen neither once nor at all: {missing:?}"
    );
    assert_newest_first(&seen);
    // Everything is there afterwards: the seed, every link added during the walk, and
    // nothing else.
    let all = codes(&app.walk_cursor("/api/v1/links?limit=100", &key, 10).await);
    assert_eq!(
        all.len(),
        SEEDED + added.len() + between,
        "links afterwards"
    );
    let all = assert_unique(&all);
    let lost: Vec<_> = added.iter().filter(|c| !all.contains(*c)).collect();
    assert!(
        lost.is_empty(),
        "links added during the walk are not listed: {lost:?}"
    );
}
