//! Rate limiting over HTTP: 429 problems with `Retry-After` and the IETF `RateLimit-Policy` /
//! `RateLimit` headers, per-key and per-IP buckets, trusted proxies, and the counters at
//! `/metrics`. The app's clock is manual, so refill happens only when a test moves time.

mod common;

use chrono::Duration;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use snip::ratelimit::{Policy, RateLimits};

fn limits() -> RateLimits {
    RateLimits {
        writes: Policy::new(3.0, 1.0),
        reads: Policy::new(5.0, 1.0),
        anonymous: Policy::new(2.0, 1.0),
        redirects: Policy::new(4.0, 2.0),
        trusted_proxies: vec!["127.0.0.1".into()],
        ..RateLimits::default()
    }
}

async fn app() -> TestApp {
    spawn_app_with(|c| c.rate_limits = limits()).await
}

#[tokio::test]
async fn writes_beyond_the_burst_get_429_with_headers_until_tokens_refill() {
    let app = app().await;
    for i in 0..3 {
        let res = app
            .post_link(
                &app.admin_key,
                &json!({"url": format!("https://example.com/{i}")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(header(&res, "ratelimit-policy"), "\"writes\";q=3;w=3");
        assert_eq!(
            header(&res, "ratelimit"),
            format!("\"writes\";r={};t={}", 2 - i, i + 1)
        );
    }
    let res = app
        .post_link(&app.admin_key, &json!({"url": "https://example.com/x"}))
        .await;
    assert_eq!(header(&res, "retry-after"), "1");
    assert_eq!(header(&res, "ratelimit"), "\"writes\";r=0;t=3");
    let problem = expect_problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(problem["detail"].as_str().unwrap().contains("writes"));

    // Reads have their own bucket.
    expect_status(
        app.get("/api/v1/links", &app.admin_key).await,
        StatusCode::OK,
    )
    .await;

    // One second refills one token: one more write, then 429 again.
    app.clock.advance(Duration::seconds(1));
    let ok = app
        .post_link(&app.admin_key, &json!({"url": "https://example.com/y"}))
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let res = app
        .post_link(&app.admin_key, &json!({"url": "https://example.com/z"}))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.metric("snip_rate_limited_total{policy=\"writes\"}")
            .await,
        2
    );
}

#[tokio::test]
async fn each_key_has_its_own_budget() {
    let app = app().await;
    let (_, member) = app.create_user("m@example.com").await;
    // The admin used two writes (create user, create key); the member starts full.
    for i in 0..3 {
        let res = app
            .post_link(&member, &json!({"url": format!("https://example.com/{i}")}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = app
        .post_link(&member, &json!({"url": "https://example.com/4"}))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = app
        .post_link(&app.admin_key, &json!({"url": "https://example.com/a"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_keys_are_throttled_per_ip() {
    let app = app().await;
    for _ in 0..2 {
        let res = app.get("/api/v1/links", UNKNOWN_KEY).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(header(&res, "ratelimit").starts_with("\"anonymous\""));
    }
    let res = app.get("/api/v1/links", "garbage").await;
    expect_problem(res, StatusCode::TOO_MANY_REQUESTS).await;
    // Requests without any key share that bucket.
    let res = app.get_anon("/api/v1/links").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // A valid key is not affected.
    expect_status(app.get("/api/v1/me", &app.admin_key).await, StatusCode::OK).await;
}

#[tokio::test]
async fn redirects_are_limited_per_client_ip_behind_a_trusted_proxy() {
    let app = app().await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/r")
        .await;
    let from = |ip: &'static str| {
        app.client
            .get(app.url(&format!("/{code}")))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..4 {
        let res = from("203.0.113.7").await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        assert!(header(&res, "ratelimit").starts_with("\"redirects\";r="));
    }
    let res = from("203.0.113.7").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // The peer (127.0.0.1) is a trusted proxy, so another client behind it has its own bucket.
    assert_eq!(
        from("198.51.100.1").await.unwrap().status(),
        StatusCode::FOUND
    );
    assert_eq!(
        app.metric("snip_rate_limited_total{policy=\"redirects\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let app = spawn_app_with(|c| {
        c.rate_limits = RateLimits {
            trusted_proxies: vec![],
            ..limits()
        }
    })
    .await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/r")
        .await;
    for i in 0..5 {
        let res = app
            .client
            .get(app.url(&format!("/{code}")))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        let expected = if i < 4 {
            StatusCode::FOUND
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(res.status(), expected, "request {i}");
    }
}

#[tokio::test]
async fn cache_counters_move_with_redirects() {
    let app = spawn_app().await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/m")
        .await;
    let hits = "snip_cache_requests_total{level=\"l1\",result=\"hit\"}";
    let misses = "snip_cache_requests_total{level=\"l1\",result=\"miss\"}";
    let negative = "snip_cache_requests_total{level=\"l1\",result=\"negative_hit\"}";
    let (h0, m0) = (app.metric(hits).await, app.metric(misses).await);
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    assert_eq!(
        (app.metric(hits).await, app.metric(misses).await),
        (h0, m0 + 1)
    );
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    assert_eq!(
        (app.metric(hits).await, app.metric(misses).await),
        (h0 + 1, m0 + 1)
    );
    for _ in 0..3 {
        assert_eq!(
            app.redirect("Nope404").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(app.metric(negative).await, 2);
}
