//! No N+1 in GraphQL: a page of links with their owners, click totals and tags costs the
//! same SQL statements for 1, 10 and 100 links, on SQLite and on PostgreSQL; on three
//! shards each loader makes at most one statement per shard. A query over the depth or
//! complexity limit runs no statement at all. Statements are counted by
//! `common::statements`; one test in this file, since the counter is process-global.

mod common;

use common::postgres::{create_many, shard_configs};
use common::statements::{install, statements_of};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The query of a dashboard: a page of the caller's links with nested fields.
const PAGE: &str = "{ links(first: 100) { edges { node { owner { email }
    stats { total humans uniqueVisitors } tags } } } }";

/// The same page of another user's links, read by an admin: the owner is not the caller,
/// so owners are loaded from the store.
fn admin_page(user: i64) -> String {
    format!(
        "{{ user(id: \"{user}\") {{ linkCount tags {{ name }} links(first: 100) {{ edges {{ node {{
            owner {{ email }} stats {{ total humans uniqueVisitors }} tags }} }} }} }} }}"
    )
}

/// The fewest statements of three runs of `query` (background work such as recording a
/// key's use may add one now and then, never take one away); checks the answer has
/// `links` links and no error.
async fn count(app: &TestApp, key: Option<&str>, query: &str, links: Option<usize>) -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        let mut req = app
            .client
            .post(app.url("/graphql"))
            .json(&json!({ "query": query }));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (n, res) = statements_of(req.send()).await;
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        if let Some(links) = links {
            assert!(body.get("errors").is_none(), "{body}");
            let edges = body["data"]["links"]["edges"]
                .as_array()
                .or_else(|| body["data"]["user"]["links"]["edges"].as_array())
                .unwrap();
            assert_eq!(edges.len(), links, "{body}");
            assert!(
                edges
                    .iter()
                    .all(|e| e["node"]["owner"]["email"].is_string())
            );
        } else {
            assert!(body["data"].is_null(), "{body}");
        }
        fewest = fewest.min(n);
    }
    fewest
}

/// The statements of the same dashboard loaded by REST, as a client would: the list, the
/// owner, and each link's statistics (the fewest of three tries).
async fn rest_count(app: &TestApp, key: &str) -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        let (n, ()) = statements_of(async {
            let list = expect_json(
                app.get("/api/v1/links?limit=100", key).await,
                StatusCode::OK,
            )
            .await;
            expect_json(app.get("/api/v1/me", key).await, StatusCode::OK).await;
            for code in codes(&items(&list)) {
                let path = format!("/api/v1/links/{code}/stats");
                expect_json(app.get(&path, key).await, StatusCode::OK).await;
            }
        })
        .await;
        fewest = fewest.min(n);
    }
    fewest
}

/// The statements of [`PAGE`] (by the member) and of [`admin_page`] at 1, 10 and 100
/// links, after a few clicks on the first link; at 100 links, the REST calls of the same
/// dashboard must be `rest` statements.
async fn counts_at_sizes(app: &TestApp, rest: usize) -> Vec<(usize, usize)> {
    let (member, key) = app.create_user("pages@example.com").await;
    let mut made = 0;
    let mut out = Vec::new();
    for size in [1, 10, 100] {
        let items = (made..size)
            .map(|i| json!({"url": format!("https://example.com/{i}"), "tags": [format!("t{}", i % 3)]}))
            .collect();
        let results = app.bulk(&key, items).await;
        assert!(results.iter().all(|r| r["status"] == 201));
        if made == 0 {
            let code = results[0]["link"]["code"].as_str().unwrap().to_owned();
            for _ in 0..2 {
                expect_status(app.redirect(&code).await, StatusCode::FOUND).await;
            }
        }
        made = size;
        if size == 100 {
            assert_eq!(rest_count(app, &key).await, rest, "REST");
        }
        let mine = count(app, Some(&key), PAGE, Some(size)).await;
        let admin = count(app, Some(&app.admin_key), &admin_page(member), Some(size)).await;
        out.push((mine, admin));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_links_costs_the_same_statements_at_any_size() {
    install();

    // SQLite. The member's page: the key, the page, the click totals. The admin's page of
    // the member's links adds the user, the owners, the link count and the tags.
    // REST: the list and its key (2), the owner (1), and per link the key, the link, its
    // series, dimensions and totals (5).
    let app = spawn_app().await;
    let counts = counts_at_sizes(&app, 2 + 1 + 100 * 5).await;
    eprintln!("SQLite statements (member's page, admin's page) at 1, 10, 100 links: {counts:?}");
    assert_eq!(counts, vec![(3, 7); 3], "SQLite: {counts:?}");

    // Over a limit: refused before any resolver runs. With a key, only the key's lookup
    // runs (as for the cheapest query); without one, nothing.
    let deep = "{ me { links(first: 1) { edges { node { owner { links(first: 1) { edges { node {
        owner { email } } } } } } } } } }";
    let wide = "{ links(first: 100) { edges { cursor node { code url title tags clicks
        owner { email } } } } }";
    for query in [deep, wide] {
        assert_eq!(count(&app, None, query, None).await, 0, "{query}");
        let with_key = count(&app, Some(&app.admin_key), query, None).await;
        assert_eq!(with_key, 1, "only the key's lookup may run: {query}");
    }
    drop(app);

    // PostgreSQL: the same statements.
    let Some(dbs) = create_many(1).await else {
        return;
    };
    let app = spawn_app_with(|c| c.database_url = dbs[0].url.clone()).await;
    let counts = counts_at_sizes(&app, 2 + 1 + 100 * 5).await;
    eprintln!("PostgreSQL statements at 1, 10, 100 links: {counts:?}");
    assert_eq!(counts, vec![(3, 7); 3], "PostgreSQL: {counts:?}");
    drop(app);

    // Three shards: users and keys on the first; the listing, the totals, the link counts
    // and the tags ask each shard once; the totals only the shards that hold links of the
    // page. At 100 links every shard holds some.
    let Some(dbs) = create_many(3).await else {
        return;
    };
    let app = spawn_app_with(|c| c.shards = shard_configs(&dbs)).await;
    // REST on shards: the list asks each shard, and a link's statistics first find the
    // shard that holds it (one more statement a link).
    let counts = counts_at_sizes(&app, 4 + 1 + 100 * 6).await;
    eprintln!("3-shard statements at 1, 10, 100 links: {counts:?}");
    // Member: key 1 + listing 3 + totals (one per shard holding links of the page).
    // Admin: key 1 + user 1 + listing 3 + owners 1 + totals + link counts 3 + tags 3.
    assert_eq!(counts[0], (1 + 3 + 1, 1 + 1 + 3 + 1 + 1 + 3 + 3));
    assert_eq!(counts[2], (1 + 3 + 3, 1 + 1 + 3 + 1 + 3 + 3 + 3));
    assert!(counts[1].0 <= counts[2].0 && counts[1].0 >= counts[0].0);
}
