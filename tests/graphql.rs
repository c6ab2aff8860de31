//! GraphQL over HTTP, against SQLite, one PostgreSQL database and three shards: every query
//! and mutation, who may see what (two members and an admin), error codes, cursors walked
//! to the end, idempotent creation, limits, GET, the explorer and the checked-in schema.

mod common;

use std::collections::HashSet;

use common::postgres::{create_many, shard_configs};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Sends a GraphQL request; returns the HTTP status and the JSON body.
async fn post(
    app: &TestApp,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    (status, body)
}

/// A request that must succeed without errors: its `data`.
async fn data(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    let (status, body) = post(app, Some(key), query, variables).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// A request that must fail: its first error, whose `extensions.code` must be `code`.
async fn error(
    app: &TestApp,
    key: Option<&str>,
    query: &str,
    variables: Value,
    code: &str,
) -> Value {
    let (_, body) = post(app, key, query, variables).await;
    let err = body["errors"][0].clone();
    assert_eq!(err["extensions"]["code"], code, "{query}: {body}");
    err
}

const LINK_FIELDS: &str = "code shortUrl url title tags ownerId redirectStatus expiresAt \
    maxClicks hasPassword clicks createdAt updatedAt";

/// Everything the API offers, on one backend.
async fn whole_api(app: &TestApp) {
    let admin = app.admin_key.clone();
    let (alice_id, alice) = app.create_user("alice@example.com").await;
    let (_, bob) = app.create_user("bob@example.com").await;

    // me
    let me = data(app, &alice, "{ me { id email name role } }", json!({})).await;
    assert_eq!(me["me"]["id"], alice_id.to_string());
    assert_eq!(me["me"]["email"], "alice@example.com");
    assert_eq!(me["me"]["role"], "MEMBER");

    // createLink: every field, as REST shows them.
    let created = data(
        app,
        &alice,
        &format!(
            "mutation($in: LinkInput!) {{ createLink(input: $in) {{ {LINK_FIELDS} owner {{ email }} }} }}"
        ),
        json!({"in": {"url": "https://example.com/a", "alias": "alice-a", "title": "A",
                      "tags": ["red", "blue"], "maxClicks": 50, "redirectStatus": 301,
                      "password": "open sesame"}}),
    )
    .await["createLink"]
        .clone();
    assert_eq!(created["code"], "alice-a");
    assert_eq!(created["shortUrl"], format!("{}/alice-a", app.base));
    assert_eq!(created["tags"], json!(["blue", "red"]));
    assert_eq!(created["redirectStatus"], 301);
    assert_eq!(created["maxClicks"], 50);
    assert_eq!(created["hasPassword"], true);
    assert_eq!(created["ownerId"], alice_id.to_string());
    assert_eq!(created["owner"]["email"], "alice@example.com");
    assert!(is_millis_time(created["createdAt"].as_str().unwrap()));
    let rest = expect_json(
        app.get("/api/v1/links/alice-a", &alice).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["url"], created["url"]);
    assert_eq!(rest["created_at"], created["createdAt"]);

    // createLinks: each item alone; a bad one is null with its own error and path.
    let (status, body) = post(
        app,
        Some(&alice),
        "mutation($in: [LinkInput!]!) { createLinks(inputs: $in) { code url } }",
        json!({"in": [{"url": "https://example.com/b"}, {"url": "ftp://nope"},
                      {"url": "https://example.com/c", "alias": "alice-a"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["data"]["createLinks"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["url"], "https://example.com/b");
    assert!(items[1].is_null() && items[2].is_null(), "{body}");
    let errors = body["errors"].as_array().unwrap();
    let by_index = |i: i64| {
        errors
            .iter()
            .find(|e| e["path"] == json!(["createLinks", i]))
            .unwrap_or_else(|| panic!("no error for item {i}: {body}"))
    };
    assert_eq!(by_index(1)["extensions"]["code"], "validation");
    assert_eq!(
        by_index(1)["extensions"]["fields"][0]["field"],
        "inputs.1.url"
    );
    assert_eq!(by_index(2)["extensions"]["code"], "alias-taken");
    let b_code = items[0]["code"].as_str().unwrap().to_owned();

    // link(code), with stats and a QR code.
    for _ in 0..3 {
        expect_status(app.redirect(&b_code).await, StatusCode::FOUND).await;
    }
    app.clock.advance(chrono::Duration::seconds(1));
    // Clicks are written in batches: wait until REST sees all three.
    let stats_path = format!("/api/v1/links/{b_code}/stats");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let rest_stats = loop {
        let s = expect_json(app.get(&stats_path, &alice).await, StatusCode::OK).await;
        if s["total"] == 3 || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let one = data(
        app,
        &alice,
        "query($c: String!) { link(code: $c) { code clicks
            stats { code interval total humans bots uniqueVisitors series { t clicks }
                    referrers { value clicks } browsers { value clicks } os { value clicks }
                    devices { value clicks } countries { value clicks } }
            qr(format: PNG, size: 128) { url dataUrl } } }",
        json!({"c": b_code}),
    )
    .await["link"]
        .clone();
    let stats = &one["stats"];
    assert_eq!(stats["total"], 3, "{one}");
    for (gql, rest) in [
        ("total", "total"),
        ("humans", "humans"),
        ("bots", "bots"),
        ("uniqueVisitors", "unique_visitors"),
        ("referrers", "referrers"),
        ("browsers", "browsers"),
        ("os", "os"),
        ("devices", "devices"),
        ("countries", "countries"),
        ("series", "series"),
    ] {
        assert_eq!(
            stats[gql], rest_stats[rest],
            "stats.{gql} differs from REST"
        );
    }
    assert_eq!(stats["interval"], "DAY");
    let qr = &one["qr"];
    assert_eq!(
        qr["url"],
        format!("{}/api/v1/links/{b_code}/qr?format=png&size=128", app.base)
    );
    assert!(
        qr["dataUrl"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo"),
        "{qr}"
    );

    // A range that ends before it starts is a validation error, as in REST.
    let err = error(
        app,
        Some(&alice),
        "query($c: String!) { link(code: $c) { stats(from: \"2026-01-02T00:00:00Z\",
            to: \"2026-01-01T00:00:00Z\") { total } } }",
        json!({"c": b_code}),
        "validation",
    )
    .await;
    assert_eq!(err["extensions"]["fields"][0]["field"], "from", "{err}");

    // updateLink: merge patch; explicit null clears, absent stays.
    let patched = data(
        app,
        &alice,
        "mutation { updateLink(code: \"alice-a\", patch: {title: null, maxClicks: 7, password: null}) {
            title maxClicks hasPassword tags url } }",
        json!({}),
    )
    .await["updateLink"]
        .clone();
    assert_eq!(
        patched,
        json!({"title": null, "maxClicks": 7, "hasPassword": false,
               "tags": ["blue", "red"], "url": "https://example.com/a"})
    );
    let err = error(
        app,
        Some(&alice),
        "mutation { updateLink(code: \"alice-a\", patch: {url: null}) { code } }",
        json!({}),
        "validation",
    )
    .await;
    assert_eq!(
        err["extensions"]["fields"][0]["field"], "patch.url",
        "{err}"
    );

    // Two members and an admin: a foreign code is "not found", never a leak.
    let err = error(
        app,
        Some(&bob),
        "{ link(code: \"alice-a\") { url } }",
        json!({}),
        "not-found",
    )
    .await;
    assert_eq!(err["path"], json!(["link"]));
    let (_, body) = post(
        app,
        Some(&bob),
        "{ link(code: \"alice-a\") { url } }",
        json!({}),
    )
    .await;
    assert_eq!(body["data"]["link"], Value::Null);
    assert!(!body.to_string().contains("example.com/a"));
    let bob_links = data(
        app,
        &bob,
        "{ links { edges { node { code } } } }",
        json!({}),
    )
    .await;
    assert_eq!(bob_links["links"]["edges"], json!([]));
    error(
        app,
        Some(&bob),
        &format!("{{ user(id: \"{alice_id}\") {{ email }} }}"),
        json!({}),
        "not-found",
    )
    .await;
    error(
        app,
        Some(&bob),
        "{ users { edges { node { email } } } }",
        json!({}),
        "missing-scope",
    )
    .await;
    error(
        app,
        Some(&bob),
        "mutation { deleteLink(code: \"alice-a\") }",
        json!({}),
        "not-found",
    )
    .await;
    let seen = data(
        app,
        &admin,
        "{ link(code: \"alice-a\") { owner { email linkCount tags { name links } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        seen["link"]["owner"],
        json!({"email": "alice@example.com", "linkCount": 2,
               "tags": [{"name": "blue", "links": 1}, {"name": "red", "links": 1}]})
    );

    // users and user(id), for the admin; a user's links and keys.
    let users = data(
        app,
        &admin,
        "{ users(first: 2) { edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }",
        json!({}),
    )
    .await;
    assert_eq!(users["users"]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(users["users"]["pageInfo"]["hasNextPage"], true);
    let after = users["users"]["pageInfo"]["endCursor"].as_str().unwrap();
    let rest_of = data(
        app,
        &admin,
        "query($a: String) { users(first: 10, after: $a) { nodes { email } pageInfo { hasNextPage } } }",
        json!({"a": after}),
    )
    .await;
    let mut emails: Vec<String> = users["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["email"].as_str().unwrap().to_owned())
        .chain(
            rest_of["users"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["email"].as_str().unwrap().to_owned()),
        )
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["admin@localhost", "alice@example.com", "bob@example.com"]
    );
    assert_eq!(rest_of["users"]["pageInfo"]["hasNextPage"], false);
    let alice_seen = data(
        app,
        &admin,
        &format!(
            "{{ user(id: \"{alice_id}\") {{ email links(first: 1) {{ nodes {{ code }} pageInfo {{ hasNextPage }} }} keys {{ id name prefix scopes }} }} }}"
        ),
        json!({}),
    )
    .await;
    assert_eq!(alice_seen["user"]["links"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(alice_seen["user"]["keys"].as_array().unwrap().len(), 1);
    assert!(
        !alice_seen.to_string().contains(&alice),
        "a key's secret was shown"
    );

    // createKey and revokeKey; a read-only key may query but not mutate.
    let made = data(
        app,
        &alice,
        "mutation { createKey(name: \"ro\", scopes: [\"links:read\"]) { secret key { id name scopes } } }",
        json!({}),
    )
    .await["createKey"]
        .clone();
    assert_eq!(made["key"]["scopes"], json!(["links:read"]));
    let read_only = made["secret"].as_str().unwrap().to_owned();
    assert!(is_api_key(&read_only));
    data(app, &read_only, "{ links { nodes { code } } }", json!({})).await;
    error(
        app,
        Some(&read_only),
        "mutation { createLink(input: {url: \"https://example.com/x\"}) { code } }",
        json!({}),
        "missing-scope",
    )
    .await;
    error(
        app,
        Some(&alice),
        "mutation { createKey(scopes: [\"users:admin\"]) { secret } }",
        json!({}),
        "forbidden",
    )
    .await;
    let key_id = made["key"]["id"].as_str().unwrap();
    let revoked = data(
        app,
        &alice,
        &format!("mutation {{ revokeKey(id: \"{key_id}\") }}"),
        json!({}),
    )
    .await;
    assert_eq!(revoked["revokeKey"], true);
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&read_only)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
    error(
        app,
        Some(&bob),
        &format!("mutation {{ revokeKey(userId: \"{alice_id}\", id: \"1\") }}"),
        json!({}),
        "not-found",
    )
    .await;

    // deleteLink: gone from GraphQL and REST, and the code answers 410.
    let deleted = data(
        app,
        &alice,
        "mutation { deleteLink(code: \"alice-a\") }",
        json!({}),
    )
    .await;
    assert_eq!(deleted["deleteLink"], true);
    error(
        app,
        Some(&alice),
        "{ link(code: \"alice-a\") { code } }",
        json!({}),
        "not-found",
    )
    .await;
    expect_status(app.redirect("alice-a").await, StatusCode::GONE).await;

    // Errors of the request itself.
    error(app, None, "{ me { id } }", json!({}), "unauthorized").await;
    let err = error(
        app,
        Some(&alice),
        "mutation { createLink(input: {url: \"notaurl\", tags: [\"bad tag\"]}) { code } }",
        json!({}),
        "validation",
    )
    .await;
    let fields: Vec<&str> = err["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"input.url"), "{err}");
    assert!(fields.iter().any(|f| f.starts_with("input.tags")), "{err}");
    error(
        app,
        Some(&alice),
        "{ links(first: 101) { nodes { code } } }",
        json!({}),
        "validation",
    )
    .await;
    error(
        app,
        Some(&alice),
        "{ links(after: \"zz\") { nodes { code } } }",
        json!({}),
        "validation",
    )
    .await;
}

/// Creating with an idempotency key: the same request twice is one link; another request
/// with the key is refused; REST with the same key and body replays it too.
async fn idempotent_creation(app: &TestApp) {
    let (_, key) = app.create_user("idem@example.com").await;
    let q = "mutation($in: LinkInput!, $k: String) { createLink(input: $in, idempotencyKey: $k) { code url } }";
    let input = json!({"url": "https://example.com/once", "title": "once"});
    let first = data(app, &key, q, json!({"in": input, "k": "key-1"})).await;
    let again = data(app, &key, q, json!({"in": input, "k": "key-1"})).await;
    assert_eq!(first, again);
    let err = error(
        app,
        Some(&key),
        q,
        json!({"in": {"url": "https://example.com/other"}, "k": "key-1"}),
        "idempotency-mismatch",
    )
    .await;
    assert_eq!(err["extensions"]["status"], 422);
    let rest = app
        .client
        .post(app.url("/api/v1/links"))
        .bearer_auth(&key)
        .header("idempotency-key", "key-1")
        .json(&input)
        .send()
        .await
        .unwrap();
    let rest = expect_json(rest, StatusCode::CREATED).await;
    assert_eq!(rest["code"], first["createLink"]["code"]);
    assert_eq!(app.link_count(&key).await, 1);
    error(
        app,
        Some(&key),
        q,
        json!({"in": input, "k": "bad key"}),
        "validation",
    )
    .await;
}

/// 23 links walked 5 at a time: every link once, newest first, then the end.
async fn cursor_walk(app: &TestApp) {
    let (_, key) = app.create_user("walker@example.com").await;
    let mut made = Vec::new();
    for i in 0..23 {
        made.push(
            app.create_link_to(&key, &format!("https://example.com/w{i}"))
                .await,
        );
        if i % 4 == 0 {
            app.clock.advance(chrono::Duration::milliseconds(1));
        }
    }
    let mut seen = Vec::new();
    let mut after = Value::Null;
    for _ in 0..10 {
        let page = data(
            app,
            &key,
            "query($a: String) { links(first: 5, after: $a) { edges { cursor node { code } }
                pageInfo { hasNextPage endCursor } } }",
            json!({"a": after}),
        )
        .await["links"]
            .clone();
        let edges = page["edges"].as_array().unwrap();
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["code"].as_str().unwrap().to_owned()),
        );
        if let Some(last) = edges.last() {
            assert_eq!(last["cursor"], page["pageInfo"]["endCursor"]);
        }
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let rest = app.walk_cursor("/api/v1/links?limit=100", &key, 2).await;
    assert_eq!(
        seen,
        codes(&rest),
        "not the REST order, or links lost or repeated"
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 23);
    let mut sorted = made.clone();
    sorted.sort();
    let mut walked = seen.clone();
    walked.sort();
    assert_eq!(walked, sorted);

    // A search: "/" is in no code, so only the URLs w1 and w10–w19 match.
    let found = data(
        app,
        &key,
        "{ links(filter: {q: \"/w1\"}) { nodes { url } } }",
        json!({}),
    )
    .await;
    let urls = found["links"]["nodes"].as_array().unwrap();
    assert_eq!(urls.len(), 11, "{found}");
    assert!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| u["url"].as_str().unwrap().contains("/w1"))
    );
}

async fn all_of_it(app: &TestApp) {
    whole_api(app).await;
    idempotent_creation(app).await;
    cursor_walk(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_on_sqlite() {
    let app = spawn_app().await;
    all_of_it(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_on_postgres() {
    let Some(dbs) = create_many(1).await else {
        return;
    };
    let app = spawn_app_with(|c| c.database_url = dbs[0].url.clone()).await;
    all_of_it(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_on_three_shards() {
    let Some(dbs) = create_many(3).await else {
        return;
    };
    let app = spawn_app_with(|c| c.shards = shard_configs(&dbs)).await;
    all_of_it(&app).await;
}

#[tokio::test]
async fn queries_come_by_get_and_mutations_only_by_post() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url(&format!(
            "/graphql?query={}",
            encode_query("{ me { email } }")
        )))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let body = expect_json(res, StatusCode::OK).await;
    assert_eq!(body["data"]["me"]["email"], "admin@localhost");
    let mutation = "mutation { createLink(input: {url: \"https://example.com/g\"}) { code } }";
    let res = app
        .client
        .get(app.url(&format!("/graphql?query={}", encode_query(mutation))))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "allow"), "POST");
    let body = expect_json(res, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "method-not-allowed"
    );
    assert_eq!(app.link_count(&app.admin_key).await, 0);

    // Bad requests are problems, as everywhere else.
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("[1, 2")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::BAD_REQUEST).await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .body("{ me { id } }")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = format!("{{ me {{ {} }} }}", "id ".repeat(10_000));
    let (status, _) = post(&app, Some(&app.admin_key), &huge, json!({})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth("snip_not_a_real_key_at_all_000000000000")
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn depth_and_complexity_are_bounded_and_the_cost_is_charged() {
    let app = spawn_app_with(|c| {
        c.rate_limits.reads.capacity = 14.0;
        c.rate_limits.reads.refill_per_sec = 0.001;
    })
    .await;
    let key = app.admin_key.clone();
    let deep = "{ me { links(first: 1) { edges { node { owner { links(first: 1) { edges { node {
        owner { email } } } } } } } } } }";
    let (_, body) = post(&app, Some(&key), deep, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "too-complex");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    let wide = "{ links(first: 100) { edges { cursor node { code url title tags clicks owner { email } } } } }";
    let (_, body) = post(&app, Some(&key), wide, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "too-complex");
    error(
        &app,
        Some(&key),
        "{ me { nothing } }",
        json!({}),
        "bad-request",
    )
    .await;

    // 14 read tokens: the three refused queries took one each; a query of complexity 901
    // takes 10; then one more costly query is refused with 429 and Retry-After.
    let costly = "{ links(first: 100) { edges { node { owner { email } stats { total humans uniqueVisitors } tags } } } }";
    let (status, body) = post(&app, Some(&key), costly, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&app, Some(&key), costly, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "rate-limited");
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&key)
        .json(&json!({"query": costly}))
        .send()
        .await
        .unwrap();
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
    // A cheap query still fits in what is left.
    let (status, body) = post(&app, Some(&key), "{ me { email } }", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A mutation is charged to the writes bucket, one token at least.
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&key)
        .json(&json!({"query": "mutation { deleteLink(code: \"none-such\") }"}))
        .send()
        .await
        .unwrap();
    assert!(
        header(&res, "ratelimit").starts_with("\"writes\";"),
        "{:?}",
        res.headers()
    );
}

#[tokio::test]
async fn the_explorer_and_its_files_come_from_snip_itself() {
    let app = spawn_app().await;
    let res = app.get_anon("/graphql").await;
    assert!(header(&res, "content-security-policy").contains("script-src 'self'"));
    let page = expect_text(res, StatusCode::OK).await;
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "{page}"
    );
    let mut assets = 0;
    for src in page.split("=\"/graphql/assets/").skip(1) {
        let name = &src[..src.find('"').unwrap()];
        let res = app
            .client
            .get(app.url(&format!("/graphql/assets/{name}")))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert!(header(&res, "cache-control").contains("immutable"));
        assert!(res.bytes().await.unwrap().len() > 100, "{name}");
        assets += 1;
    }
    assert_eq!(assets, 5);
    expect_status(
        app.get_anon("/graphql/assets/nothing.js").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Introspection is public: it is how an explorer learns the schema. Its usual query
    // nests `ofType` deeper than data queries may nest; schema reading has its own rule
    // instead, which refuses lists of types nested in lists of types.
    let (status, body) = post(&app, None, INTROSPECTION, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    let types: Vec<&str> = body["data"]["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"Link") && types.contains(&"LinkPatch"),
        "{types:?}"
    );
    let bomb = "{ __schema { types { fields { type { fields { type { fields { type {
        fields { name } } } } } } } } } }";
    error(&app, None, bomb, json!({}), "too-complex").await;
    // Mixed with data, the depth limit holds for the whole query.
    let mixed = "{ __typename me { links(first: 1) { edges { node { owner { links(first: 1) {
        edges { node { code } } } } } } } } }";
    error(&app, Some(&app.admin_key), mixed, json!({}), "too-complex").await;
}

/// The introspection query of GraphiQL and most GraphQL tools.
const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name }
  mutationType { name } subscriptionType { name } types { ...FullType }
  directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue }
    type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind
  name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

#[tokio::test]
async fn the_served_schema_is_the_one_checked_in() {
    let app = spawn_app().await;
    let served = expect_text(
        app.get_anon("/graphql/schema.graphql").await,
        StatusCode::OK,
    )
    .await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.graphql");
    if std::env::var_os("SNIP_BLESS").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        served == checked_in,
        "docs/schema.graphql differs from the served schema; if the change is meant, \
         run the test again with SNIP_BLESS=1 and commit the file"
    );
}
