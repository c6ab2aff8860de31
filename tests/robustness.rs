//! No client input causes a 500 or a panic: thousands of random bodies, paths, queries and
//! headers are thrown at every endpoint, and every answer must be below 500 and, when it is
//! an error, a problem document. Seeded, so a failure reproduces.

mod common;

use common::*;
use rand::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A random JSON value, biased towards the shapes the API expects.
fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    let fields = [
        "url",
        "alias",
        "title",
        "tags",
        "expires_at",
        "max_clicks",
        "redirect_status",
        "password",
        "email",
        "name",
        "role",
        "scopes",
        "links",
    ];
    match rng.random_range(0..10) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e12),
        4 => json!(random_string(rng)),
        5 | 6 if depth < 3 => {
            let n = rng.random_range(0..4);
            Value::Array((0..n).map(|_| random_json(rng, depth + 1)).collect())
        }
        _ if depth < 3 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.random_range(0..5) {
                let key = fields.choose(rng).copied().unwrap_or("x").to_owned();
                map.insert(key, random_json(rng, depth + 1));
            }
            Value::Object(map)
        }
        _ => json!(random_string(rng)),
    }
}

fn random_string(rng: &mut StdRng) -> String {
    let pieces = [
        "https://example.com/",
        "http://",
        "ftp://x",
        "javascript:alert(1)",
        "https://a@b.c/",
        "xn--",
        "ü",
        "\u{0}",
        "\u{202e}",
        "%00",
        "../",
        "a",
        "-",
        "_",
        " ",
        "\"",
        "'",
        "<b>",
        "2030-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "9999999999999999999",
        "admin",
        "links:read",
        "users:admin",
        "@",
        ".",
        "snip_",
        "\n",
        "😀",
    ];
    let n = rng.random_range(0..6);
    (0..n).map(|_| *pieces.choose(rng).unwrap_or(&"")).collect()
}

fn random_path(rng: &mut StdRng, codes: &[String]) -> String {
    let code = codes.choose(rng).cloned().unwrap_or_default();
    let paths = [
        "/api/v1/links".to_owned(),
        "/api/v1/links/bulk".to_owned(),
        format!("/api/v1/links/{code}"),
        "/api/v1/users".to_owned(),
        "/api/v1/users/1".to_owned(),
        "/api/v1/users/1/keys".to_owned(),
        "/api/v1/users/1/keys/1".to_owned(),
        "/api/v1/users/1/links".to_owned(),
        "/api/v1/users/-1".to_owned(),
        "/api/v1/users/99999999999999999999".to_owned(),
        "/api/v1/me".to_owned(),
        format!("/{code}"),
        format!("/{code}+"),
        "/%00".to_owned(),
        "/a%2Fb".to_owned(),
        "/api/v1/%F0%9F%98%80".to_owned(),
    ];
    let mut p = paths.choose(rng).cloned().unwrap_or_default();
    if rng.random_bool(0.3) {
        let q = [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=100",
            "page=0",
            "page=99999999999",
            "cursor=zz",
            "cursor=",
            "tag=",
            "q=%25",
            "page=1&cursor=x",
            "unknown=1",
            "limit=18446744073709551616",
        ];
        p.push('?');
        p.push_str(q.choose(rng).unwrap_or(&""));
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_cause_a_server_error() {
    let app = spawn_app().await;
    let mut codes = Vec::new();
    for i in 0..3 {
        codes.push(
            app.create_link_to(&app.admin_key, &format!("https://example.com/{i}"))
                .await,
        );
    }
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut seen = std::collections::BTreeSet::new();
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
    ];
    let content_types = [
        "application/json",
        "application/merge-patch+json",
        "text/plain",
        "",
    ];
    for i in 0..1_500 {
        // A quarter of the requests aim at link creation, the richest endpoint.
        let create = rng.random_bool(0.25);
        let method = if create {
            Method::POST
        } else {
            methods.choose(&mut rng).cloned().unwrap_or(Method::GET)
        };
        let path = if create {
            "/api/v1/links".to_owned()
        } else {
            random_path(&mut rng, &codes)
        };
        let mut req = app.client.request(method.clone(), app.url(&path));
        if rng.random_bool(0.8) {
            req = req.bearer_auth(&app.admin_key);
        }
        let ct = if create && rng.random_bool(0.8) {
            "application/json"
        } else {
            content_types.choose(&mut rng).copied().unwrap_or("")
        };
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        if rng.random_bool(0.5) {
            req = req.header(
                "idempotency-key",
                random_string(&mut rng).replace(['\n', '\u{0}'], ""),
            );
        }
        let body = if rng.random_bool(0.1) {
            // Not JSON at all.
            random_string(&mut rng)
        } else if rng.random_bool(0.4) {
            // A valid link with one field made random: reaches the deepest code.
            let mut link = json!({
                "url": format!("https://example.com/{i}"),
                "alias": format!("alias{}", rng.random_range(0..5)),
                "tags": ["x"],
                "redirect_status": 301,
            });
            let field = [
                "url",
                "alias",
                "tags",
                "title",
                "expires_at",
                "max_clicks",
                "password",
            ]
            .choose(&mut rng)
            .copied()
            .unwrap_or("title");
            if rng.random_bool(0.5) {
                link[field] = random_json(&mut rng, 1);
            }
            link.to_string()
        } else {
            random_json(&mut rng, 0).to_string()
        };
        let res = match req.body(body.clone()).send().await {
            Ok(r) => r,
            // reqwest refuses some header values we generate; nothing reached the server.
            Err(e) if e.is_builder() => continue,
            Err(e) => panic!("request {i} failed: {e}"),
        };
        let status = res.status();
        seen.insert(status.as_u16());
        let ctype = header(&res, "content-type");
        assert!(
            status.as_u16() < 500,
            "request {i}: {method} {path} with {body:?} answered {status}"
        );
        if status.is_client_error() && method != Method::HEAD && !ctype.starts_with("text/html") {
            assert_eq!(
                ctype, "application/problem+json",
                "request {i}: {method} {path}"
            );
        }
    }
    // The inputs reached the handlers, not only the router's edges.
    for expected in [200, 201, 204, 302, 400, 401, 404, 405, 409, 410, 415, 422] {
        assert!(seen.contains(&expected), "no {expected} among {seen:?}");
    }
    // Still healthy afterwards.
    assert_eq!(app.get_anon("/healthz").await.status(), 200);
}
