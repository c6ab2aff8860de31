//! Redis dies during traffic and comes back: redirects stay correct with zero 5xx, the
//! limiter falls back to local buckets, and everything recovers. Uses a private
//! `redis-server` on its own port, so the shared one is never disturbed.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::redis::PrivateRedis;
use common::*;
use reqwest::StatusCode;
use snip::ratelimit::{Policy, RateLimits};

/// Redirects every code `rounds` times; every answer must be the right redirect.
async fn redirect_all(app: &TestApp, links: &HashMap<String, String>, rounds: usize) {
    for _ in 0..rounds {
        for (code, url) in links {
            let res = app.redirect(code).await;
            assert_eq!(res.status(), StatusCode::FOUND, "redirect of {code}");
            assert_eq!(&header(&res, "location"), url);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_costs_no_request() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.redis_url = Some(redis.url());
        c.redis_timeout_ms = 100;
        c.rate_limits = RateLimits {
            enabled: true,
            writes: Policy::new(10_000.0, 1.0),
            reads: Policy::new(10_000.0, 1.0),
            redirects: Policy::new(100_000.0, 1.0),
            nodes: 2,
            ..RateLimits::default()
        };
    })
    .await;
    let mut links = HashMap::new();
    for i in 0..10 {
        let url = format!("https://example.com/{i}");
        links.insert(app.create_link_to(&app.admin_key, &url).await, url);
    }
    redirect_all(&app, &links, 5).await;
    assert_eq!(app.metric("snip_redis_up").await, 1);
    assert_eq!(app.metric("snip_rate_limit_fallback_total").await, 0);

    redis.kill();
    // Writes and reads go on: new links are created and followed while Redis is down.
    for i in 10..20 {
        let url = format!("https://example.com/{i}");
        links.insert(app.create_link_to(&app.admin_key, &url).await, url);
    }
    redirect_all(&app, &links, 5).await;
    let res = app.get("/api/v1/links?limit=100", &app.admin_key).await;
    assert_eq!(items(&expect_json(res, StatusCode::OK).await).len(), 20);
    assert_eq!(app.metric("snip_redis_up").await, 0);
    // Still ready (Redis has a fallback), but saying what is missing.
    let ready = expect_json(app.get_anon("/readyz").await, StatusCode::OK).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["redis"]["state"], "down", "{ready}");
    let fallbacks = app.metric("snip_rate_limit_fallback_total").await;
    assert!(fallbacks > 0, "the limiter did not fall back");
    assert!(
        app.metric("snip_cache_requests_total{level=\"l2\",result=\"error\"}")
            .await
            > 0
    );

    redis.resume().unwrap();
    // Redis is retried at most a second after the last failure; traffic brings it back.
    let mut recovered = false;
    for _ in 0..100 {
        redirect_all(&app, &links, 1).await;
        if app.metric("snip_redis_up").await == 1 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "snip did not reconnect to Redis");
    assert_eq!(
        app.metric("snip_circuit_state{dependency=\"redis\"}").await,
        0
    );
    let after = app.metric("snip_rate_limit_fallback_total").await;
    redirect_all(&app, &links, 3).await;
    assert_eq!(
        app.metric("snip_rate_limit_fallback_total").await,
        after,
        "the limiter still falls back with Redis up"
    );
}
