//! The links API against docs/api.md: create, read, replace, patch, delete, bulk,
//! validation, error shapes, auth, idempotency and isolation between users.

mod common;

use chrono::Duration;
use common::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use snip::clock::Clock;

const LINK_FIELDS: [&str; 13] = [
    "code",
    "short_url",
    "url",
    "title",
    "tags",
    "owner_id",
    "redirect_status",
    "expires_at",
    "max_clicks",
    "has_password",
    "clicks",
    "created_at",
    "updated_at",
];

fn link_path(code: &str) -> String {
    format!("/api/v1/links/{code}")
}

fn assert_link_shape(link: &Value) {
    let obj = link.as_object().expect("link is an object");
    for field in LINK_FIELDS {
        assert!(obj.contains_key(field), "link lacks {field:?}: {link}");
    }
    for secret in ["password", "password_hash"] {
        assert!(!obj.contains_key(secret), "link exposes {secret:?}: {link}");
    }
    assert!(is_millis_time(&str_field(link, "created_at")), "{link}");
    assert!(is_millis_time(&str_field(link, "updated_at")), "{link}");
}

#[tokio::test]
async fn create_with_every_field_then_get() {
    let app = spawn_app().await;
    let (user_id, key) = app.create_user("a@example.com").await;
    let expires = fmt_time(app.clock.now() + Duration::days(1));

    let resp = app
        .post_link(
            &key,
            &json!({
                "url": "https://Example.COM/a/b?x=1#frag",
                "alias": "my-Alias_1",
                "title": "A title",
                "tags": ["b", "a", "b", "c:d.e"],
                "expires_at": expires,
                "max_clicks": 10,
                "redirect_status": 308,
                "password": "hunter2",
            }),
        )
        .await;
    assert_eq!(header(&resp, "location"), "/api/v1/links/my-Alias_1");
    let link = expect_json(resp, StatusCode::CREATED).await;
    assert_link_shape(&link);
    assert_eq!(link["code"], "my-Alias_1");
    assert_eq!(link["short_url"], app.url("/my-Alias_1"));
    assert_eq!(link["url"], "https://example.com/a/b?x=1#frag");
    assert_eq!(link["title"], "A title");
    assert_eq!(link["tags"], json!(["a", "b", "c:d.e"]));
    assert_eq!(link["owner_id"], user_id);
    assert_eq!(link["redirect_status"], 308);
    assert_eq!(link["expires_at"], expires);
    assert_eq!(link["max_clicks"], 10);
    assert_eq!(link["has_password"], true);
    assert_eq!(link["clicks"], 0);
    assert_eq!(link["created_at"], app.now_str());
    assert_eq!(link["updated_at"], app.now_str());

    let got = expect_json(
        app.get(&link_path("my-Alias_1"), &key).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, link);
}

#[tokio::test]
async fn create_minimal_link_gets_defaults_and_a_random_code() {
    let app = spawn_app().await;
    let (user_id, key) = app.create_user("a@example.com").await;

    let resp = app
        .post_link(&key, &json!({ "url": "https://example.com/" }))
        .await;
    let location = header(&resp, "location");
    let link = expect_json(resp, StatusCode::CREATED).await;
    assert_link_shape(&link);
    let code = str_field(&link, "code");
    assert_eq!(code.len(), 7, "{link}");
    assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()), "{link}");
    assert_eq!(location, link_path(&code));
    assert_eq!(link["short_url"], app.url(&format!("/{code}")));
    assert_eq!(link["url"], "https://example.com/");
    assert_eq!(link["title"], Value::Null);
    assert_eq!(link["tags"], json!([]));
    assert_eq!(link["owner_id"], user_id);
    assert_eq!(link["redirect_status"], 302);
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["max_clicks"], Value::Null);
    assert_eq!(link["has_password"], false);
    assert_eq!(link["clicks"], 0);

    // Without an Idempotency-Key, the same body makes a second, distinct link.
    let other = app.create_link_to(&key, "https://example.com/").await;
    assert_ne!(other, code);
    assert_eq!(app.link_count(&key).await, 2);
}

#[tokio::test]
async fn idn_host_is_stored_as_punycode() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let link = app
        .create_link(&key, &json!({ "url": "https://bücher.example/" }))
        .await;
    assert_eq!(link["url"], "https://xn--bcher-kva.example/");
    let code = str_field(&link, "code");
    let resp = app.redirect(&code).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://xn--bcher-kva.example/");
}

#[tokio::test]
async fn aliases_are_case_sensitive() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let upper = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/upper", "alias": "CaseAlias" }),
        )
        .await;
    let lower = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/lower", "alias": "casealias" }),
        )
        .await;
    assert_eq!(upper["code"], "CaseAlias");
    assert_eq!(lower["code"], "casealias");
    let resp = app.redirect("CaseAlias").await;
    assert_eq!(header(&resp, "location"), "https://example.com/upper");
    let resp = app.redirect("casealias").await;
    assert_eq!(header(&resp, "location"), "https://example.com/lower");
}

#[tokio::test]
async fn put_replaces_every_field_and_clears_absent_ones() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let created = app
        .create_link(
            &key,
            &json!({
                "url": "https://example.com/old",
                "alias": "put-me",
                "title": "Old",
                "tags": ["x", "y"],
                "expires_at": fmt_time(app.clock.now() + Duration::days(2)),
                "max_clicks": 5,
                "redirect_status": 301,
                "password": "secret",
            }),
        )
        .await;
    app.clock.advance(Duration::minutes(5));

    let resp = app
        .put_json(
            &link_path("put-me"),
            &key,
            &json!({ "url": "https://example.com/new" }),
        )
        .await;
    let link = expect_json(resp, StatusCode::OK).await;
    assert_link_shape(&link);
    assert_eq!(link["code"], "put-me");
    assert_eq!(link["url"], "https://example.com/new");
    assert_eq!(link["title"], Value::Null);
    assert_eq!(link["tags"], json!([]));
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["max_clicks"], Value::Null);
    assert_eq!(link["redirect_status"], 302);
    assert_eq!(link["has_password"], false);
    assert_eq!(link["created_at"], created["created_at"]);
    assert_eq!(link["updated_at"], app.now_str());

    let got = expect_json(app.get(&link_path("put-me"), &key).await, StatusCode::OK).await;
    assert_eq!(got, link);
    // No password any more: a plain redirect to the new target.
    let resp = app.redirect("put-me").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/new");

    // A full replacement with every field set.
    let expires = fmt_time(app.clock.now() + Duration::hours(3));
    let body = json!({
        "url": "https://example.org/full",
        "title": "Full",
        "tags": ["t2", "t1"],
        "expires_at": expires,
        "max_clicks": 9,
        "redirect_status": 307,
        "password": "pw",
    });
    let link = expect_json(
        app.put_json(&link_path("put-me"), &key, &body).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["url"], "https://example.org/full");
    assert_eq!(link["title"], "Full");
    assert_eq!(link["tags"], json!(["t1", "t2"]));
    assert_eq!(link["expires_at"], expires);
    assert_eq!(link["max_clicks"], 9);
    assert_eq!(link["redirect_status"], 307);
    assert_eq!(link["has_password"], true);

    // PUT validates like create, and a PUT without url is refused.
    let resp = app
        .put_json(
            &link_path("put-me"),
            &key,
            &json!({ "url": "ftp://x.example/" }),
        )
        .await;
    expect_field_error(resp, "url").await;
    let resp = app
        .put_json(&link_path("put-me"), &key, &json!({ "title": "no url" }))
        .await;
    expect_problem_in(
        resp,
        &[StatusCode::UNPROCESSABLE_ENTITY, StatusCode::BAD_REQUEST],
    )
    .await;
    let got = expect_json(app.get(&link_path("put-me"), &key).await, StatusCode::OK).await;
    assert_eq!(got["url"], "https://example.org/full");
}

#[tokio::test]
async fn patch_is_a_merge_patch_and_null_clears() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let expires = fmt_time(app.clock.now() + Duration::days(2));
    let created = app
        .create_link(
            &key,
            &json!({
                "url": "https://example.com/p",
                "alias": "patch-me",
                "title": "Old",
                "tags": ["x"],
                "expires_at": expires,
                "max_clicks": 5,
                "redirect_status": 308,
                "password": "secret",
            }),
        )
        .await;
    let path = link_path("patch-me");
    app.clock.advance(Duration::minutes(1));

    // Absent fields stay.
    let link = expect_json(
        app.patch_json(&path, &key, &json!({ "title": "New" }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["title"], "New");
    assert_eq!(link["url"], "https://example.com/p");
    assert_eq!(link["tags"], json!(["x"]));
    assert_eq!(link["expires_at"], expires);
    assert_eq!(link["max_clicks"], 5);
    assert_eq!(link["redirect_status"], 308);
    assert_eq!(link["has_password"], true);
    assert_eq!(link["created_at"], created["created_at"]);
    assert_eq!(link["updated_at"], app.now_str());

    // null clears; redirect_status null resets to 302.
    let link = expect_json(
        app.patch_json(
            &path,
            &key,
            &json!({
                "title": null, "tags": null, "expires_at": null, "max_clicks": null,
                "redirect_status": null, "password": null,
            }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["title"], Value::Null);
    assert_eq!(link["tags"], json!([]));
    assert_eq!(link["expires_at"], Value::Null);
    assert_eq!(link["max_clicks"], Value::Null);
    assert_eq!(link["redirect_status"], 302);
    assert_eq!(link["has_password"], false);
    assert_eq!(link["url"], "https://example.com/p");

    // Plain application/json is accepted too.
    let resp = app
        .send_json(
            Method::PATCH,
            &path,
            Some(key.as_str()),
            &json!({ "url": "https://example.com/q", "tags": ["z", "y"] }),
        )
        .await;
    let link = expect_json(resp, StatusCode::OK).await;
    assert_eq!(link["url"], "https://example.com/q");
    assert_eq!(link["tags"], json!(["y", "z"]));

    // url cannot be null, and a patched value is validated.
    expect_field_error(
        app.patch_json(&path, &key, &json!({ "url": null })).await,
        "url",
    )
    .await;
    expect_field_error(
        app.patch_json(&path, &key, &json!({ "max_clicks": 0 }))
            .await,
        "max_clicks",
    )
    .await;
    expect_field_error(
        app.patch_json(&path, &key, &json!({ "redirect_status": 303 }))
            .await,
        "redirect_status",
    )
    .await;

    let got = expect_json(app.get(&path, &key).await, StatusCode::OK).await;
    assert_eq!(got, link);
    let resp = app.redirect("patch-me").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/q");
}

#[tokio::test]
async fn delete_then_410_and_the_code_is_never_reused() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let alias_link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/a", "alias": "gone-soon" }),
        )
        .await;
    let random_code = app.create_link_to(&key, "https://example.com/b").await;
    assert_eq!(alias_link["code"], "gone-soon");

    for code in ["gone-soon", random_code.as_str()] {
        expect_status(
            app.delete(&link_path(code), &key).await,
            StatusCode::NO_CONTENT,
        )
        .await;
        expect_problem(app.redirect(code).await, StatusCode::GONE).await;
        expect_problem_in(
            app.get(&link_path(code), &key).await,
            &[StatusCode::NOT_FOUND, StatusCode::GONE],
        )
        .await;
        // The deleted code can never be taken again, as an alias or otherwise.
        let resp = app
            .post_link(
                &key,
                &json!({ "url": "https://example.com/again", "alias": code }),
            )
            .await;
        expect_problem(resp, StatusCode::CONFLICT).await;
        expect_problem(app.redirect(code).await, StatusCode::GONE).await;
    }
    assert_eq!(app.link_count(&key).await, 0);
    let page = expect_json(app.get("/api/v1/links", &key).await, StatusCode::OK).await;
    assert_eq!(page["data"], json!([]));
}

#[tokio::test]
async fn bulk_creates_valid_items_and_reports_each_in_order() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let results = app
        .bulk(
            &key,
            vec![
                json!({ "url": "https://example.com/0" }),
                json!({ "url": "not a url" }),
                json!({ "url": "https://example.com/2", "alias": "bulk-a", "tags": ["t"] }),
                json!({ "url": "https://example.com/3", "alias": "bulk-a" }),
                json!({ "url": "https://example.com/4", "max_clicks": 0 }),
                json!({ "url": "https://example.com/5", "title": "five" }),
            ],
        )
        .await;
    let expected = [201, 422, 201, 409, 422, 201];
    assert_eq!(results.len(), expected.len(), "{results:?}");
    for (i, (result, status)) in results.iter().zip(expected).enumerate() {
        assert_eq!(result["index"], i, "{result}");
        assert_eq!(result["status"], status, "{result}");
        if status == 201 {
            assert_link_shape(&result["link"]);
            let code = str_field(&result["link"], "code");
            let got = expect_json(app.get(&link_path(&code), &key).await, StatusCode::OK).await;
            assert_eq!(got, result["link"]);
        } else {
            assert_eq!(result["error"]["status"], status, "{result}");
            assert!(result["error"]["title"].is_string(), "{result}");
        }
    }
    assert_eq!(results[2]["link"]["code"], "bulk-a");
    assert_eq!(results[2]["link"]["tags"], json!(["t"]));
    assert_eq!(results[5]["link"]["title"], "five");
    assert!(
        has_field_error(&results[1]["error"], "url"),
        "{}",
        results[1]
    );
    assert!(
        has_field_error(&results[4]["error"], "max_clicks"),
        "{}",
        results[4]
    );
    assert_eq!(app.link_count(&key).await, 3);
}

#[tokio::test]
async fn bulk_limits_items_to_between_1_and_1000() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let item = json!({ "url": "https://example.com/bulk" });

    let resp = app
        .post_json(
            "/api/v1/links/bulk",
            &key,
            &json!({ "links": vec![item.clone(); 1001] }),
        )
        .await;
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(app.link_count(&key).await, 0);

    let resp = app
        .post_json("/api/v1/links/bulk", &key, &json!({ "links": [] }))
        .await;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;

    let results = app.bulk(&key, vec![item; 1000]).await;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == 201));
    assert_eq!(app.link_count(&key).await, 1000);
}

#[tokio::test]
async fn invalid_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let past = fmt_time(app.clock.now() - Duration::minutes(1));
    let too_long = format!("https://example.com/{}", "a".repeat(2049 - 20));
    assert_eq!(too_long.len(), 2049);
    let own_host = app.url("/loop");

    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "url"),
        (json!({ "url": "ftp://example.com/" }), "url"),
        (json!({ "url": "javascript:alert(1)" }), "url"),
        (json!({ "url": "example.com/no-scheme" }), "url"),
        (json!({ "url": "https://" }), "url"),
        (json!({ "url": "/relative/path" }), "url"),
        (json!({ "url": "https://bank.com@evil.example/" }), "url"),
        (json!({ "url": "https://user:pass@example.com/" }), "url"),
        (json!({ "url": too_long }), "url"),
        (json!({ "url": own_host }), "url"),
        (
            json!({ "url": "https://e.com/", "alias": "bad alias!" }),
            "alias",
        ),
        (json!({ "url": "https://e.com/", "alias": "ab" }), "alias"),
        (
            json!({ "url": "https://e.com/", "alias": "a".repeat(65) }),
            "alias",
        ),
        (json!({ "url": "https://e.com/", "alias": "ünï" }), "alias"),
        (json!({ "url": "https://e.com/", "alias": "api" }), "alias"),
        (json!({ "url": "https://e.com/", "alias": "docs" }), "alias"),
        (json!({ "url": "https://e.com/", "alias": "API" }), "alias"),
        (
            json!({ "url": "https://e.com/", "alias": "healthz" }),
            "alias",
        ),
        (
            json!({ "url": "https://e.com/", "redirect_status": 303 }),
            "redirect_status",
        ),
        (
            json!({ "url": "https://e.com/", "redirect_status": 200 }),
            "redirect_status",
        ),
        (
            json!({ "url": "https://e.com/", "expires_at": past }),
            "expires_at",
        ),
        (
            json!({ "url": "https://e.com/", "max_clicks": 0 }),
            "max_clicks",
        ),
        (
            json!({ "url": "https://e.com/", "max_clicks": -1 }),
            "max_clicks",
        ),
        (
            json!({ "url": "https://e.com/", "max_clicks": 9_007_199_254_740_993_u64 }),
            "max_clicks",
        ),
        (
            json!({ "url": "https://e.com/", "tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>() }),
            "tags",
        ),
        (
            json!({ "url": "https://e.com/", "tags": ["has space"] }),
            "tags",
        ),
        (json!({ "url": "https://e.com/", "tags": [""] }), "tags"),
        (
            json!({ "url": "https://e.com/", "tags": ["t".repeat(65)] }),
            "tags",
        ),
        (
            json!({ "url": "https://e.com/", "title": "x".repeat(513) }),
            "title",
        ),
        (
            json!({ "url": "https://e.com/", "password": "" }),
            "password",
        ),
        (
            json!({ "url": "https://e.com/", "password": "p".repeat(257) }),
            "password",
        ),
    ];
    for (body, field) in &cases {
        let resp = app.post_link(&key, body).await;
        let status = resp.status();
        let text = resp.text().await.expect("read body");
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} should be 422 on {field}; got {text}"
        );
        let problem: Value = serde_json::from_str(&text).expect("problem is JSON");
        assert!(
            has_field_error(&problem, field),
            "{body} should name {field:?}: {problem}"
        );
    }
    assert_eq!(app.link_count(&key).await, 0);

    // The same rules at their boundaries accept.
    let exactly_max = format!("https://example.com/{}", "a".repeat(2048 - 20));
    let ok: Vec<Value> = vec![
        json!({ "url": exactly_max }),
        json!({ "url": "http://example.com/plain-http" }),
        json!({ "url": "https://e.com/", "alias": "abc" }),
        json!({ "url": "https://e.com/", "alias": "a".repeat(64) }),
        json!({ "url": "https://e.com/", "alias": "apix" }),
        json!({ "url": "https://e.com/", "title": "x".repeat(512) }),
        json!({ "url": "https://e.com/", "tags": (0..20).map(|i| format!("t{i}")).collect::<Vec<_>>() }),
        json!({ "url": "https://e.com/", "tags": ["t".repeat(64)] }),
        json!({ "url": "https://e.com/", "max_clicks": 9_007_199_254_740_992_u64 }),
        json!({ "url": "https://e.com/", "max_clicks": 1 }),
        json!({ "url": "https://e.com/", "password": "p".repeat(256) }),
        json!({ "url": "https://e.com/", "redirect_status": 301 }),
        json!({ "url": "https://e.com/", "redirect_status": 307 }),
        json!({ "url": "https://e.com/", "expires_at": fmt_time(app.clock.now() + Duration::seconds(5)) }),
    ];
    for body in &ok {
        let resp = app.post_link(&key, body).await;
        let status = resp.status();
        let text = resp.text().await.expect("read body");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{body} should be accepted; got {text}"
        );
    }
    assert_eq!(app.link_count(&key).await, ok.len() as i64);
}

#[tokio::test]
async fn blocked_hosts_and_their_subdomains_are_refused() {
    let app = spawn_app_with(|c| c.blocked_hosts = vec!["blocked.example".to_string()]).await;
    let (_, key) = app.create_user("a@example.com").await;
    for url in [
        "https://blocked.example/",
        "http://blocked.example/path",
        "https://sub.blocked.example/x",
        "https://a.b.blocked.example/x",
        "https://BLOCKED.example/caps",
    ] {
        let resp = app.post_link(&key, &json!({ "url": url })).await;
        expect_field_error(resp, "url").await;
    }
    for url in [
        "https://notblocked.example/",
        "https://blocked.example.com/",
    ] {
        let resp = app.post_link(&key, &json!({ "url": url })).await;
        expect_json(resp, StatusCode::CREATED).await;
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    for body in ["{\"url\":", "not json", "{\"url\": \"https://e.com/\",}"] {
        let resp = app
            .request(Method::POST, "/api/v1/links", Some(key.as_str()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        expect_problem(resp, StatusCode::BAD_REQUEST).await;
    }
    assert_eq!(app.link_count(&key).await, 0);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/" }).to_string();
    for ctype in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .request(Method::POST, "/api/v1/links", Some(key.as_str()))
            .body(body.clone());
        if let Some(ctype) = ctype {
            req = req.header("content-type", ctype);
        }
        let resp = req.send().await.expect("send");
        expect_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
    assert_eq!(app.link_count(&key).await, 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = spawn_app_with(|c| c.body_limit = 1024).await;
    let (_, key) = app.create_user("a@example.com").await;
    let small = json!({ "url": "https://example.com/", "title": "x".repeat(100) });
    expect_json(app.post_link(&key, &small).await, StatusCode::CREATED).await;
    let big = json!({ "url": "https://example.com/", "title": "x".repeat(2000) });
    expect_problem(
        app.post_link(&key, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(app.link_count(&key).await, 1);
}

#[tokio::test]
async fn default_body_limit_is_one_mebibyte() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let big = json!({ "url": "https://example.com/", "title": "x".repeat(1024 * 1024 + 1) });
    expect_problem(
        app.post_link(&key, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(app.link_count(&key).await, 0);
}

#[tokio::test]
async fn bad_or_missing_keys_are_401_with_www_authenticate() {
    let app = spawn_app().await;
    let (user_id, key) = app.create_user("a@example.com").await;
    let spare = app
        .create_key(user_id, &key, &json!({ "name": "spare" }))
        .await;
    let spare_key = str_field(&spare, "key");
    expect_json(app.get("/api/v1/links", &spare_key).await, StatusCode::OK).await;
    let spare_id = id_segment(&spare["id"]);
    expect_status(
        app.delete(&format!("/api/v1/users/{user_id}/keys/{spare_id}"), &key)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;

    let requests = [
        app.request(Method::GET, "/api/v1/links", None),
        app.request(Method::GET, "/api/v1/links", Some(UNKNOWN_KEY)),
        app.request(Method::GET, "/api/v1/links", Some("nonsense")),
        app.request(Method::GET, "/api/v1/links", Some(spare_key.as_str())),
        app.request(Method::GET, "/api/v1/links", None)
            .header("authorization", format!("Basic {key}")),
        app.request(Method::POST, "/api/v1/links", None)
            .json(&json!({ "url": "https://example.com/" })),
        app.request(Method::POST, "/api/v1/links", Some(spare_key.as_str()))
            .json(&json!({ "url": "https://example.com/" })),
    ];
    for req in requests {
        let resp = req.send().await.expect("send");
        let www = header(&resp, "www-authenticate");
        assert!(www.starts_with("Bearer"), "WWW-Authenticate was {www:?}");
        expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(app.link_count(&key).await, 0);
}

#[tokio::test]
async fn a_key_without_the_scope_is_403() {
    let app = spawn_app().await;
    let (user_id, key) = app.create_user("a@example.com").await;
    let code = app.create_link_to(&key, "https://example.com/").await;
    let read_only = app
        .create_key(user_id, &key, &json!({ "scopes": ["links:read"] }))
        .await;
    let read_only = str_field(&read_only, "key");
    let write_only = app
        .create_key(user_id, &key, &json!({ "scopes": ["links:write"] }))
        .await;
    let write_only = str_field(&write_only, "key");

    expect_json(app.get("/api/v1/links", &read_only).await, StatusCode::OK).await;
    expect_json(app.get(&link_path(&code), &read_only).await, StatusCode::OK).await;
    let body = json!({ "url": "https://example.com/x" });
    expect_problem(
        app.post_link(&read_only, &body).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.post_json(
            "/api/v1/links/bulk",
            &read_only,
            &json!({ "links": [body] }),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.patch_json(&link_path(&code), &read_only, &json!({ "title": "t" }))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.put_json(&link_path(&code), &read_only, &body).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.delete(&link_path(&code), &read_only).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    expect_problem(
        app.get("/api/v1/links", &write_only).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_problem(
        app.get(&link_path(&code), &write_only).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_json(app.post_link(&write_only, &body).await, StatusCode::CREATED).await;

    // A links key is not an admin key.
    expect_problem(
        app.post_json("/api/v1/users", &key, &json!({ "email": "x@example.com" }))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Nothing was changed by the refused calls.
    let link = expect_json(app.get(&link_path(&code), &key).await, StatusCode::OK).await;
    assert_eq!(link["title"], Value::Null);
    assert_eq!(app.link_count(&key).await, 2);
}

#[tokio::test]
async fn unknown_routes_and_codes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let code = app.create_link_to(&key, "https://example.com/").await;

    for path in ["/api/v1/nope", "/api/v1/links/zzzzzzz", "/api/v2/links"] {
        expect_problem(app.get(path, &key).await, StatusCode::NOT_FOUND).await;
    }
    expect_problem(app.get_anon("/a/b/c").await, StatusCode::NOT_FOUND).await;
    expect_problem(
        app.put_json(
            "/api/v1/links/zzzzzzz",
            &key,
            &json!({ "url": "https://example.com/" }),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.patch_json("/api/v1/links/zzzzzzz", &key, &json!({ "title": "t" }))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.delete("/api/v1/links/zzzzzzz", &key).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    for (method, path) in [
        (Method::DELETE, "/api/v1/links".to_string()),
        (Method::PUT, "/api/v1/links".to_string()),
        (Method::POST, link_path(&code)),
        (Method::DELETE, "/api/v1/me".to_string()),
    ] {
        let resp = app.send(method.clone(), &path, Some(key.as_str())).await;
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        expect_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    // The link is untouched by all of that.
    expect_json(app.get(&link_path(&code), &key).await, StatusCode::OK).await;
}

fn idempotent_post(app: &TestApp, key: &str, idem: &str, body: &Value) -> reqwest::RequestBuilder {
    app.request(Method::POST, "/api/v1/links", Some(key))
        .header("idempotency-key", idem)
        .json(body)
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response_byte_for_byte() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/idem", "title": "once", "tags": ["i"] });

    let first = idempotent_post(&app, &key, "key-1", &body)
        .send()
        .await
        .expect("send");
    let first_location = header(&first, "location");
    let first_ctype = header(&first, "content-type");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_bytes = first.bytes().await.expect("body");
    let link: Value = serde_json::from_slice(&first_bytes).expect("json");
    let code = str_field(&link, "code");

    // Later (within 24 h) the same key and body replay the stored answer.
    app.clock.advance(Duration::hours(1));
    for _ in 0..3 {
        let again = idempotent_post(&app, &key, "key-1", &body)
            .send()
            .await
            .expect("send");
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(header(&again, "location"), first_location);
        assert_eq!(header(&again, "content-type"), first_ctype);
        let bytes = again.bytes().await.expect("body");
        assert_eq!(bytes, first_bytes, "replay differs from the first answer");
    }
    assert_eq!(app.link_count(&key).await, 1);
    let list = expect_json(app.get("/api/v1/links", &key).await, StatusCode::OK).await;
    assert_eq!(codes(&items(&list)), vec![code]);

    // A new key is a new request.
    let resp = idempotent_post(&app, &key, "key-2", &body)
        .send()
        .await
        .expect("send");
    let second = expect_json(resp, StatusCode::CREATED).await;
    assert_ne!(second["code"], link["code"]);
    assert_eq!(app.link_count(&key).await, 2);
}

#[tokio::test]
async fn idempotency_key_replays_for_24_hours_then_is_a_new_request() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/window" });
    let send = || async {
        let resp = idempotent_post(&app, &key, "daily", &body)
            .send()
            .await
            .expect("send");
        expect_json(resp, StatusCode::CREATED).await
    };
    let first = send().await;

    // A millisecond short of 24 hours: still the stored answer.
    app.clock
        .advance(Duration::hours(24) - Duration::milliseconds(1));
    assert_eq!(send().await, first);
    assert_eq!(app.link_count(&key).await, 1);

    // Past 24 hours the key is forgotten: the same request creates a second link, and that
    // answer is the one replayed from then on.
    app.clock.advance(Duration::milliseconds(2));
    let second = send().await;
    assert_ne!(second["code"], first["code"]);
    assert_eq!(app.link_count(&key).await, 2);
    assert_eq!(send().await, second);
    assert_eq!(app.link_count(&key).await, 2);
}

#[tokio::test]
async fn idempotency_key_reused_with_another_body_is_422() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/idem" });
    let resp = idempotent_post(&app, &key, "key-1", &body)
        .send()
        .await
        .expect("send");
    let first = expect_json(resp, StatusCode::CREATED).await;

    let other = json!({ "url": "https://example.com/other" });
    let resp = idempotent_post(&app, &key, "key-1", &other)
        .send()
        .await
        .expect("send");
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.link_count(&key).await, 1);
    let list = expect_json(app.get("/api/v1/links", &key).await, StatusCode::OK).await;
    assert_eq!(codes(&items(&list)), vec![str_field(&first, "code")]);
}

#[tokio::test]
async fn idempotency_keys_are_per_user() {
    let app = spawn_app().await;
    let (_, key_a) = app.create_user("a@example.com").await;
    let (_, key_b) = app.create_user("b@example.com").await;
    let body = json!({ "url": "https://example.com/shared" });

    let a = idempotent_post(&app, &key_a, "same", &body)
        .send()
        .await
        .expect("send");
    let a = expect_json(a, StatusCode::CREATED).await;
    let b = idempotent_post(&app, &key_b, "same", &body)
        .send()
        .await
        .expect("send");
    let b = expect_json(b, StatusCode::CREATED).await;
    assert_ne!(a["code"], b["code"]);
    assert_ne!(a["owner_id"], b["owner_id"]);
    // And B's use of a key A has used with another body is not a conflict either.
    let other = json!({ "url": "https://example.com/b-only" });
    let resp = idempotent_post(&app, &key_b, "a-only", &other)
        .send()
        .await
        .expect("send");
    expect_json(resp, StatusCode::CREATED).await;
    let resp = idempotent_post(&app, &key_a, "a-only", &body)
        .send()
        .await
        .expect("send");
    expect_json(resp, StatusCode::CREATED).await;
    assert_eq!(app.link_count(&key_a).await, 2);
    assert_eq!(app.link_count(&key_b).await, 2);
}

#[tokio::test]
async fn idempotency_key_must_be_1_to_255_visible_ascii() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/" });
    let resp = idempotent_post(&app, &key, &"k".repeat(256), &body)
        .send()
        .await
        .expect("send");
    expect_problem_in(
        resp,
        &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY],
    )
    .await;
    let resp = idempotent_post(&app, &key, "", &body)
        .send()
        .await
        .expect("send");
    expect_problem_in(
        resp,
        &[StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY],
    )
    .await;
    assert_eq!(app.link_count(&key).await, 0);
    let resp = idempotent_post(&app, &key, &"k".repeat(255), &body)
        .send()
        .await
        .expect("send");
    expect_json(resp, StatusCode::CREATED).await;
}

/// On one database a second request waits for the first one's commit and replays it, so
/// this race rarely shows a `409`; the `409` of a key in flight is tested on its own in
/// `sharding.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_idempotency_key_create_one_link_and_answer_alike() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let body = json!({ "url": "https://example.com/race" });
    let sends = (0..10).map(|_| async {
        let resp = idempotent_post(&app, &key, "racy", &body)
            .send()
            .await
            .expect("send");
        let status = resp.status();
        (status, resp.bytes().await.expect("body"))
    });
    let answers = join_all(sends).await;
    let created: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!created.is_empty(), "no request succeeded: {answers:?}");
    assert!(
        created.iter().all(|b| *b == created[0]),
        "the 201 answers differ: {answers:?}"
    );
    for (status, bytes) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::CONFLICT,
            "unexpected {status}: {bytes:?}"
        );
    }
    assert_eq!(app.link_count(&key).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_alias_yield_exactly_one_201() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("a@example.com").await;
    let sends = (0..20).map(|i| {
        let body = json!({ "url": format!("https://example.com/{i}"), "alias": "contested" });
        let app = &app;
        let key = &key;
        async move {
            let resp = app.post_link(key, &body).await;
            let status = resp.status();
            let ctype = header(&resp, "content-type");
            (status, ctype, resp.text().await.expect("body"))
        }
    });
    let answers = join_all(sends).await;
    let created = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .count();
    let conflicts = answers
        .iter()
        .filter(|(s, c, _)| *s == StatusCode::CONFLICT && c.starts_with("application/problem+json"))
        .count();
    assert_eq!((created, conflicts), (1, 19), "{answers:#?}");
    assert_eq!(app.link_count(&key).await, 1);
    let resp = app.redirect("contested").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn other_users_links_are_404_and_never_listed() {
    let app = spawn_app().await;
    let (id_a, key_a) = app.create_user("a@example.com").await;
    let (_, key_b) = app.create_user("b@example.com").await;
    let a_link = app
        .create_link(
            &key_a,
            &json!({ "url": "https://example.com/a", "alias": "a-private", "title": "A's" }),
        )
        .await;
    let a_random = app.create_link_to(&key_a, "https://example.com/a2").await;
    let b_code = app.create_link_to(&key_b, "https://example.com/b").await;

    for code in ["a-private", a_random.as_str()] {
        let path = link_path(code);
        expect_problem(app.get(&path, &key_b).await, StatusCode::NOT_FOUND).await;
        expect_problem(
            app.put_json(&path, &key_b, &json!({ "url": "https://evil.example/" }))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_problem(
            app.patch_json(&path, &key_b, &json!({ "url": "https://evil.example/" }))
                .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_problem(app.delete(&path, &key_b).await, StatusCode::NOT_FOUND).await;
    }
    // The answer for someone else's code is the same as for a code nobody has.
    let unknown = expect_problem(
        app.get(&link_path("nobody-has"), &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let foreign = expect_problem(
        app.get(&link_path("a-private"), &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(unknown["title"], foreign["title"]);
    assert_eq!(unknown["type"], foreign["type"]);
    expect_problem(
        app.get(&format!("/api/v1/users/{id_a}/links"), &key_b)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // B's lists, in both modes and with a matching filter, hold only B's link.
    for path in [
        "/api/v1/links",
        "/api/v1/links?limit=100",
        "/api/v1/links?page=1&limit=100",
        "/api/v1/links?q=example",
        "/api/v1/links?q=a-private",
    ] {
        let page = expect_json(app.get(path, &key_b).await, StatusCode::OK).await;
        let listed = codes(&items(&page));
        assert!(
            listed.iter().all(|c| *c == b_code),
            "{path} leaks another user's links: {page}"
        );
    }

    // A's links are untouched and still redirect.
    let got = expect_json(
        app.get(&link_path("a-private"), &key_a).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, a_link);
    let resp = app.redirect("a-private").await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), "https://example.com/a");
    let resp = app.redirect(&a_random).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(app.link_count(&key_a).await, 2);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_named_in_the_422() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("types@example.com").await;
    for (body, field) in [
        (
            json!({ "url": "https://e.com/", "max_clicks": 5.5 }),
            "max_clicks",
        ),
        (
            json!({ "url": "https://e.com/", "tags": ["a", 7] }),
            "tags[1]",
        ),
        (json!({ "url": 3 }), "url"),
        (json!({ "url": "https://e.com/", "nope": 1 }), "nope"),
    ] {
        let problem = expect_problem(
            app.post_link(&key, &body).await,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    // An integral number written with a fraction (as JavaScript clients may) is the integer.
    let resp = app
        .post_link(&key, &json!({ "url": "https://e.com/", "max_clicks": 5.0 }))
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let link: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(link["max_clicks"], 5);
    // In bulk, each item's error names its own field.
    let results = app
        .bulk(
            &key,
            vec![json!({ "url": "https://e.com/", "max_clicks": 5.5 })],
        )
        .await;
    assert_eq!(results[0]["error"]["errors"][0]["field"], "max_clicks");
}
