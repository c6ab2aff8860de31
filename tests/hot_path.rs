//! The redirect path before the router (`src/http/serve.rs`): `GET /{code}` is answered
//! without the router, and a link in L1 straight from the cache (the hot path). The first
//! request of a code misses L1 and is resolved from the store; the next ones take the hot
//! path. Every way must answer as the router does (which `hot_path = false` restores), count
//! alike, and resolve anything that needs more than a redirect by every rule.

mod common;

use chrono::Duration;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use snip::clock::Clock;

const L1_HITS: &str = "snip_cache_requests_total{level=\"l1\",result=\"hit\"}";
const REDIRECTS: &str = "snip_redirects_total{outcome=\"redirect\"}";
const REDIRECT_LATENCY: &str =
    "snip_http_request_duration_seconds_count{route=\"/{code}\",status=\"3xx\"}";

#[tokio::test]
async fn the_hot_path_answers_and_counts_like_the_router() {
    let app = spawn_app().await;
    let code = app
        .create_link(
            &app.admin_key,
            &json!({"url": "https://example.com/hot", "redirect_status": 308}),
        )
        .await;
    let code = str_field(&code, "code");
    let get = |id: Option<&'static str>| {
        let mut req = app.client.get(app.url(&format!("/{code}")));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };

    let hits = app.metric(L1_HITS).await;
    let first = get(None).await.unwrap(); // an L1 miss: resolved from the store
    assert_eq!(app.metric(L1_HITS).await, hits, "the first GET missed L1");
    let second = get(None).await.unwrap(); // an L1 hit: the hot path answers
    assert_eq!(app.metric(L1_HITS).await, hits + 1, "the second GET hit L1");

    for res in [&first, &second] {
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(res, "location"), "https://example.com/hot");
        assert_eq!(header(res, "cache-control"), "public, max-age=3600");
        assert!(header(res, "ratelimit").starts_with("\"redirects\";r="));
        assert!(header(res, "ratelimit-policy").starts_with("\"redirects\";q="));
        assert_eq!(header(res, "x-request-id").len(), 36, "a UUID request id");
    }
    assert_ne!(
        header(&first, "x-request-id"),
        header(&second, "x-request-id")
    );
    // A request id the client sent is echoed by both paths.
    let echoed = get(Some("trace-me-123")).await.unwrap();
    assert_eq!(header(&echoed, "x-request-id"), "trace-me-123");

    assert_eq!(app.metric(REDIRECTS).await, 3);
    assert_eq!(app.metric(REDIRECT_LATENCY).await, 3);
    // Every click is counted, whichever path answered it.
    let mut clicks = 0;
    for _ in 0..100 {
        let link = expect_json(
            app.get(&format!("/api/v1/links/{code}"), &app.admin_key)
                .await,
            StatusCode::OK,
        )
        .await;
        clicks = link["clicks"].as_i64().unwrap();
        if clicks == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(clicks, 3);
}

#[tokio::test]
async fn cached_links_that_need_more_than_a_redirect_get_every_rule() {
    let app = spawn_app().await;
    let key = app.admin_key.clone();
    let protected = str_field(
        &app.create_link(
            &key,
            &json!({"url": "https://example.com/p", "password": "sesame"}),
        )
        .await,
        "code",
    );
    let limited = str_field(
        &app.create_link(
            &key,
            &json!({"url": "https://example.com/l", "max_clicks": 2}),
        )
        .await,
        "code",
    );
    let expiring = str_field(
        &app.create_link(
            &key,
            &json!({"url": "https://example.com/e", "expires_at": fmt_time(app.clock.now() + Duration::minutes(5))}),
        )
        .await,
        "code",
    );

    // Cached after the first request, a password link still asks for its password.
    for _ in 0..2 {
        let html = expect_text(app.redirect(&protected).await, StatusCode::OK).await;
        assert!(html.contains("<form"), "{html}");
    }
    // A click limit stays exact: the third request finds the link used up.
    for expected in [StatusCode::FOUND, StatusCode::FOUND, StatusCode::GONE] {
        assert_eq!(app.redirect(&limited).await.status(), expected);
    }
    // A cached link whose expiry passes answers 410 at once.
    assert_eq!(app.redirect(&expiring).await.status(), StatusCode::FOUND);
    assert_eq!(app.redirect(&expiring).await.status(), StatusCode::FOUND);
    app.clock.advance(Duration::minutes(6));
    expect_problem(app.redirect(&expiring).await, StatusCode::GONE).await;
    // HEAD and previews are never answered by the hot path either.
    let head = app
        .client
        .head(app.url(&format!("/{expiring}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_refused_hot_redirect_is_a_problem_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.rate_limits.redirects = snip::ratelimit::Policy::new(2.0, 1.0);
    })
    .await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/r")
        .await;
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);
    let refused = app.redirect(&code).await;
    assert!(!header(&refused, "retry-after").is_empty());
    assert_eq!(header(&refused, "x-request-id").len(), 36);
    let problem = expect_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(problem["status"], 429);
}

#[tokio::test]
async fn with_the_hot_path_off_the_router_answers_everything() {
    let app = spawn_app_with(|c| c.hot_path = false).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/off")
        .await;
    for _ in 0..3 {
        let res = app.redirect(&code).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(header(&res, "location"), "https://example.com/off");
    }
    // The router counts its own L1 hits: two, after the first request's miss.
    assert_eq!(app.metric(L1_HITS).await, 2);
}
