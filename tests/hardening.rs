//! What a hostile anonymous client can try, each refused as docs/security.md says: huge bulk
//! bodies, password guessing, code enumeration, links that loop back, framing of snip's
//! pages, shared caching of counted links, forged request ids, slow and idle connections.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use snip::ratelimit::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn bulk_bodies_stop_at_the_item_cap_and_the_body_limit() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("bulk@example.com").await;
    // 1,001 real items: 413, and nothing created.
    let items: Vec<_> = (0..1001)
        .map(|i| json!({ "url": format!("https://example.com/{i}") }))
        .collect();
    let problem = expect_problem(
        app.post_json("/api/v1/links/bulk", &key, &json!({ "links": items }))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(problem["type"], "/docs/problems#too-many-items");
    // The type, resolved against the request's URL, is a page of snip that describes it.
    let page = reqwest::get(app.url("/docs/problems")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("id=\"too-many-items\""));
    let listed = expect_json(app.get("/api/v1/links", &key).await, StatusCode::OK).await;
    assert!(items_of(&listed).is_empty(), "{listed}");

    // Hundreds of thousands of tiny items within the body limit: the parse stops at the
    // 1,001st and answers 413 (the old code built one error per item first).
    let tiny = format!("{{\"links\":[{}{{}}]}}", "{},".repeat(400_000));
    let resp = app
        .request(Method::POST, "/api/v1/links/bulk", Some(&key))
        .header("content-type", "application/json")
        .body(tiny)
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;

    // 1,000 items still work, and shape errors still fail alone.
    let mut items: Vec<_> = (0..999)
        .map(|i| json!({ "url": format!("https://example.com/ok/{i}") }))
        .collect();
    items.push(json!({ "url": "https://example.com/x", "max_clicks": "many" }));
    let results = app.bulk(&key, items).await;
    assert_eq!(results.len(), 1000);
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[999]["status"], 422);
}

fn items_of(page: &serde_json::Value) -> Vec<serde_json::Value> {
    page["data"].as_array().cloned().unwrap_or_default()
}

/// An app that believes `X-Forwarded-For` from 127.0.0.1, so a test can speak as many
/// clients, with the given budgets.
async fn app_with_budgets(tweak: impl FnOnce(&mut snip::Config)) -> TestApp {
    spawn_app_with(|c| {
        c.rate_limits.trusted_proxies = vec!["127.0.0.1".into()];
        tweak(c);
    })
    .await
}

async fn unlock(app: &TestApp, code: &str, password: &str, client: &str) -> reqwest::Response {
    app.request(Method::POST, &format!("/{code}"), None)
        .header("x-forwarded-for", client)
        .form(&[("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn password_guesses_are_budgeted_per_client_and_per_link() {
    let app = app_with_budgets(|c| {
        c.rate_limits.passwords = Policy::new(3.0, 3.0 / 60.0);
        c.rate_limits.link_passwords = Policy::new(8.0, 8.0 / 60.0);
    })
    .await;
    let (_, key) = app.create_user("pw@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/vault", "password": "sesame", "redirect_status": 308 }),
        )
        .await;
    let code = str_field(&link, "code");

    // One client: three wrong guesses, then 429 with Retry-After, even for the right one.
    for _ in 0..3 {
        let resp = unlock(&app, &code, "guess", "203.0.113.1").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = unlock(&app, &code, "sesame", "203.0.113.1").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&resp, "retry-after").parse::<u64>().unwrap() >= 1);
    expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await;

    // Another client is not held by the first one's budget; the right password answers
    // 303 (never the link's 308, which would post the password on) and is not cached.
    let resp = unlock(&app, &code, "sesame", "203.0.113.2").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, "location"), "https://example.com/vault");
    assert_eq!(header(&resp, "cache-control"), "no-store");

    // The link's own budget (8) caps all clients together: 4 used so far.
    for i in 3..7 {
        let resp = unlock(&app, &code, "guess", &format!("203.0.113.{i}")).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = unlock(&app, &code, "sesame", "203.0.113.99").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // Refusals are counted, under each budget.
    assert!(
        app.metric("snip_rate_limited_total{policy=\"passwords\"}")
            .await
            >= 1
    );
    assert!(
        app.metric("snip_rate_limited_total{policy=\"link_passwords\"}")
            .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_password_checks_wait_in_a_short_queue_or_get_503() {
    let app = app_with_budgets(|c| {
        c.password_checks = Some(1);
        c.password_check_queue = 1;
    })
    .await;
    let (_, key) = app.create_user("q@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/q", "password": "right" }),
        )
        .await;
    let code = str_field(&link, "code");
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (app, code) = (app.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let resp = unlock(&app, &code, "wrong", &format!("198.51.100.{i}")).await;
            (resp.status(), header(&resp, "retry-after"))
        }));
    }
    let mut wrong = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => wrong += 1,
            (StatusCode::SERVICE_UNAVAILABLE, retry) => {
                assert!(!retry.is_empty(), "503 without Retry-After");
                busy += 1;
            }
            (other, _) => panic!("unexpected {other}"),
        }
    }
    assert!(wrong >= 2, "{wrong} checked");
    assert!(busy >= 1, "no check was turned away ({wrong} checked)");
}

#[tokio::test]
async fn links_to_snip_itself_are_refused_by_every_name() {
    let app = spawn_app_with(|c| c.own_hosts = vec!["Short.Example".into()]).await;
    let (_, key) = app.create_user("loop@example.com").await;
    let port = app.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/abc"),
        format!("http://localhost:{port}/abc"),
        format!("http://LOCALHOST.:{port}/abc"),
        format!("http://[::ffff:7f00:1]:{port}/abc"),
        format!("http://[::1]:{port}/abc"),
        format!("http://0.0.0.0:{port}/abc"),
        format!("http://2130706433:{port}/abc"),
        "https://short.example/abc".to_owned(),
    ] {
        let problem =
            expect_field_error(app.post_link(&key, &json!({ "url": url })).await, "url").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("own host"),
            "{url}: {problem}"
        );
    }
    app.create_link_to(&key, "https://example.com/fine").await;
}

#[tokio::test]
async fn pages_cannot_be_framed_and_nothing_is_sniffed() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("h@example.com").await;
    let link = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/p", "password": "pw" }),
        )
        .await;
    let code = str_field(&link, "code");
    for path in [format!("/{code}"), format!("/{code}+")] {
        let resp = app.get_anon(&path).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(header(&resp, "content-type").starts_with("text/html"));
        let csp = header(&resp, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
        assert_eq!(header(&resp, "referrer-policy"), "no-referrer");
    }
    let docs = app.get_anon("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(header(&docs, "content-security-policy").contains("frame-ancestors 'none'"));
    for resp in [
        app.get_anon("/nosuchcode").await,
        app.get_anon("/api/v1/links").await,
    ] {
        assert!(header(&resp, "content-type").starts_with("application/problem+json"));
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    }
}

#[tokio::test]
async fn counted_or_expiring_permanent_redirects_are_not_kept_by_shared_caches() {
    let app = spawn_app().await;
    let (_, key) = app.create_user("c@example.com").await;
    let plain = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/1", "redirect_status": 301 }),
        )
        .await;
    let limited = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/2", "redirect_status": 301, "max_clicks": 5 }),
        )
        .await;
    let soon = fmt_time(snip::clock::Clock::now(&app.clock) + chrono::TimeDelta::minutes(10));
    let expiring = app
        .create_link(
            &key,
            &json!({ "url": "https://example.com/3", "redirect_status": 308, "expires_at": soon }),
        )
        .await;
    // Twice each: once from the store, once from the cache (the hot path).
    for _ in 0..2 {
        let resp = app.redirect(&str_field(&plain, "code")).await;
        assert_eq!(header(&resp, "cache-control"), "public, max-age=3600");
        let resp = app.redirect(&str_field(&limited, "code")).await;
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(header(&resp, "cache-control"), "private, no-cache");
        let resp = app.redirect(&str_field(&expiring, "code")).await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        let cc = header(&resp, "cache-control");
        let age: u64 = cc
            .strip_prefix("public, max-age=")
            .unwrap_or_else(|| panic!("{cc}"))
            .parse()
            .unwrap();
        assert!((1..=600).contains(&age), "{cc}");
    }
}

async fn probe(app: &TestApp, code: &str, client: &str) -> StatusCode {
    app.request(Method::GET, &format!("/{code}"), None)
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn unknown_codes_are_budgeted_per_client_and_ipv6_by_its_64() {
    let app = app_with_budgets(|c| c.rate_limits.misses = Policy::new(3.0, 3.0 / 60.0)).await;
    let (_, key) = app.create_user("e@example.com").await;
    let known = app.create_link_to(&key, "https://example.com/known").await;
    let cold = app.create_link_to(&key, "https://example.com/cold").await;
    // Another client's visit puts `known` in the cache.
    assert_eq!(probe(&app, &known, "192.0.2.200").await, StatusCode::FOUND);
    for i in 0..3 {
        assert_eq!(
            probe(&app, &format!("probe{i}"), "192.0.2.1").await,
            StatusCode::NOT_FOUND
        );
    }
    // A fourth unknown code is refused before the store is asked.
    assert_eq!(
        probe(&app, "probe3", "192.0.2.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A code already known to be missing costs nothing (the negative cache answers).
    assert_eq!(
        probe(&app, "probe0", "192.0.2.1").await,
        StatusCode::NOT_FOUND
    );
    // Links in the cache still redirect; others wait until the budget refills, so that a
    // hit cannot be told from a miss; another client has its own budget.
    assert_eq!(probe(&app, &known, "192.0.2.1").await, StatusCode::FOUND);
    assert_eq!(
        probe(&app, &cold, "192.0.2.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        probe(&app, "probe4", "192.0.2.2").await,
        StatusCode::NOT_FOUND
    );

    // IPv6: every address of one /64 shares a budget.
    for i in 0..3 {
        let client = format!("2001:db8:7:7::{i:x}");
        assert_eq!(
            probe(&app, &format!("six{i}"), &client).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        probe(&app, "six9", "2001:db8:7:7:ffff::1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        probe(&app, "six9", "2001:db8:7:8::1").await,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.metric("snip_rate_limited_total{policy=\"misses\"}")
            .await
            >= 2
    );
}

#[tokio::test]
async fn client_request_ids_are_kept_only_when_short_and_printable() {
    let app = spawn_app().await;
    for path in ["/healthz", "/nosuchcode"] {
        let resp = app
            .request(Method::GET, path, None)
            .header("x-request-id", "trace-123")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&resp, "x-request-id"), "trace-123");
        let long = "x".repeat(65);
        for bad in [long.as_str(), "two words", "tab\there"] {
            let resp = app
                .request(Method::GET, path, None)
                .header("x-request-id", bad)
                .send()
                .await
                .unwrap();
            let id = header(&resp, "x-request-id");
            assert_ne!(id, bad);
            assert_eq!(id.len(), 36, "{path}: a fresh UUID, not {id:?}");
        }
    }
}

/// Reads until the server closes the connection (or `limit` passes); whether it closed.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed_and_connections_capped() {
    let app = spawn_app_with(|c| {
        c.connections.header_read_timeout_secs = 1;
        c.connections.idle_timeout_secs = 6;
        c.connections.max = Some(3);
    })
    .await;
    // Half a request head: closed after about a second (well before the idle timeout).
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(4)).await);

    // A keep-alive connection that goes quiet after a request: open well past the head
    // deadline, closed after the idle timeout.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(!closed_within(&mut idle, Duration::from_secs(3)).await);
    assert!(closed_within(&mut idle, Duration::from_secs(8)).await);

    // Three silent connections fill the cap: the next request waits in the backlog...
    let mut hogs = Vec::new();
    for _ in 0..3 {
        hogs.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(client.get(app.url("/healthz")).send().await.is_err());
    // ...and is served as soon as one of them goes.
    drop(hogs.pop());
    let resp = app.get_anon("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
}
