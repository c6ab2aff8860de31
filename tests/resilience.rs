//! Observability and resilience over real HTTP: the metrics move as requests are made, and
//! a store that stops answering opens its circuit (calls fail fast with 503), cached
//! redirects keep working (stale-if-error), and everything recovers when it returns.

mod common;

use std::time::Duration;

use common::postgres::TestDb;
use common::proxy::{Mode, Proxy};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_redirects_by_outcome() {
    let app = spawn_app().await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/m")
        .await;
    for _ in 0..2 {
        assert!(app.redirect(&code).await.status().is_redirection());
    }
    assert_eq!(
        app.redirect("nosuchcode").await.status(),
        StatusCode::NOT_FOUND
    );

    let requests = |route: &str, class: &str| {
        format!("snip_http_request_duration_seconds_count{{route=\"{route}\",status=\"{class}\"}}")
    };
    assert_eq!(app.metric(&requests("/{code}", "3xx")).await, 2);
    assert_eq!(app.metric(&requests("/{code}", "4xx")).await, 1);
    assert_eq!(app.metric(&requests("/api/v1/links", "2xx")).await, 1);
    assert_eq!(
        app.metric("snip_redirects_total{outcome=\"redirect\"}")
            .await,
        2
    );
    assert_eq!(
        app.metric("snip_redirects_total{outcome=\"not_found\"}")
            .await,
        1
    );
    // One store read per code: the second redirect of `code` came from the cache.
    assert_eq!(
        app.metric("snip_store_call_duration_seconds_count{op=\"get_redirect\",outcome=\"ok\"}")
            .await,
        2
    );
    assert_eq!(
        app.metric("snip_circuit_state{dependency=\"store\"}").await,
        0
    );
    assert_eq!(
        app.metric("snip_store_pool_connections{pool=\"write\",state=\"max\"}")
            .await,
        1
    );
    // Labels are route templates: no raw path, no code, ever becomes a label.
    let text = app.get_anon("/metrics").await.text().await.unwrap();
    assert!(!text.contains(&code), "a raw code leaked into the metrics");
    assert!(!text.contains("nosuchcode"));
}

#[tokio::test]
async fn password_redirects_are_counted_by_outcome() {
    let app = spawn_app().await;
    let outcome = |o: &str| format!("snip_redirects_total{{outcome=\"{o}\"}}");
    let link = app
        .create_link(
            &app.admin_key,
            &json!({"url": "https://example.com/locked", "password": "right"}),
        )
        .await;
    let code = str_field(&link, "code");
    let post = |password: &'static str| {
        app.client
            .post(app.url(&format!("/{code}")))
            .form(&[("password", password)])
            .send()
    };

    // The form is shown: the password is required.
    expect_text(app.redirect(&code).await, StatusCode::OK).await;
    assert_eq!(app.metric(&outcome("password_required")).await, 1);
    assert_eq!(app.metric(&outcome("wrong_password")).await, 0);
    // A wrong password shows the form again.
    for n in 1..=2 {
        expect_text(post("wrong").await.unwrap(), StatusCode::UNAUTHORIZED).await;
        assert_eq!(app.metric(&outcome("wrong_password")).await, n);
    }
    // The right one redirects; neither count moves.
    let res = post("right").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.metric(&outcome("password_required")).await, 1);
    assert_eq!(app.metric(&outcome("wrong_password")).await, 2);
}

#[tokio::test]
async fn cache_entries_count_what_l1_holds() {
    let app = spawn_app().await;
    let entries = "snip_cache_entries";
    let start = app.metric(entries).await;
    let mut codes = Vec::new();
    for i in 0..3 {
        codes.push(
            app.create_link_to(&app.admin_key, &format!("https://example.com/{i}"))
                .await,
        );
    }
    for code in &codes {
        assert!(app.redirect(code).await.status().is_redirection());
    }
    assert_eq!(app.metric(entries).await, start + 3);
    // An unknown code is held too (as unknown), once.
    for _ in 0..2 {
        assert_eq!(
            app.redirect("nosuchcode").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(app.metric(entries).await, start + 4);
    // Redirects of held codes add nothing; a deleted link is dropped.
    for code in &codes {
        assert!(app.redirect(code).await.status().is_redirection());
    }
    assert_eq!(app.metric(entries).await, start + 4);
    expect_status(
        app.delete(&format!("/api/v1/links/{}", codes[0]), &app.admin_key)
            .await,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(app.metric(entries).await, start + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_click_queue_depth_shows_clicks_waiting_and_returns_to_0() {
    let app = spawn_app().await;
    let depth = "snip_click_queue_depth";
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/q")
        .await;
    assert_eq!(app.metric(depth).await, 0);
    // The worker looks at an idle queue only every so often (up to 160 ms): clicks made
    // right after it looked wait until it looks again. Try a few times to catch them.
    let mut seen = 0;
    for _ in 0..20 {
        // Idle for a while, so the worker slows down.
        tokio::time::sleep(Duration::from_millis(400)).await;
        for _ in 0..3 {
            assert!(app.redirect(&code).await.status().is_redirection());
        }
        seen = app.metric(depth).await;
        assert!(seen <= 3, "{seen} clicks waiting after 3 redirects");
        if seen > 0 {
            break;
        }
    }
    assert!(seen > 0, "the queue depth never showed a waiting click");
    // Then the worker takes them.
    let started = std::time::Instant::now();
    while app.metric(depth).await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "clicks still waiting after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_request_timeout_secs_is_answered_503() {
    // A bulk create of 200 password-protected links takes several seconds (argon2 each),
    // and nothing else in it can answer 503 (the store is a local SQLite file).
    let app = spawn_app_with(|c| c.request_timeout_secs = 1).await;
    let links: Vec<_> = (0..200)
        .map(|i| json!({"url": format!("https://example.com/{i}"), "password": "pw"}))
        .collect();
    let started = std::time::Instant::now();
    let res = app
        .post_json(
            "/api/v1/links/bulk",
            &app.admin_key,
            &json!({ "links": links }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(header(&res, "retry-after"), "2");
    let problem = expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("#unavailable"),
        "{problem}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "answered after {took:?}, not at the 1 s timeout"
    );
    // The app goes on serving.
    app.create_link_to(&app.admin_key, "https://example.com/after")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_store_opens_the_circuit_and_cached_redirects_keep_working() {
    let Some((_db, proxy, url)) = database_behind_a_proxy().await else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.database_url = url;
        c.store_timeout_ms = 300;
        // Cached links go stale after a second, so the outage is met by stale entries.
        c.cache.ttl_secs = 1;
    })
    .await;
    let mut codes = Vec::new();
    for i in 0..10 {
        let code = app
            .create_link_to(&app.admin_key, &format!("https://example.com/{i}"))
            .await;
        assert!(app.redirect(&code).await.status().is_redirection());
        codes.push(code);
    }

    // The database host stops answering: connections hang, nothing comes back.
    proxy.set(Mode::Blackhole);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for round in 0..20 {
        for code in &codes {
            let status = app.redirect(code).await.status();
            assert!(
                status.is_redirection(),
                "round {round}: a cached code answered {status} while the store was down"
            );
        }
    }
    assert!(app.metric("snip_cache_stale_served_total").await > 0);

    // Writes fail, fast, with 503 and Retry-After, once the circuit is open.
    for _ in 0..10 {
        let res = app
            .post_link(&app.admin_key, &json!({"url": "https://example.com/new"}))
            .await;
        assert_eq!(res.headers()["retry-after"], "2");
        let problem = expect_problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(problem["type"].as_str().unwrap().ends_with("#unavailable"));
    }
    assert_ne!(
        app.metric("snip_circuit_state{dependency=\"store\"}").await,
        0
    );
    assert!(
        app.metric("snip_circuit_rejected_total{dependency=\"store\"}")
            .await
            > 0,
        "no call was refused without waiting: the circuit never opened"
    );
    let ready = app.get_anon("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["store"]["state"], "down");

    // The database is back: a probe closes the circuit and writes succeed again.
    proxy.set(Mode::Pass);
    let mut created = false;
    for _ in 0..150 {
        let res = app
            .post_link(&app.admin_key, &json!({"url": "https://example.com/back"}))
            .await;
        if res.status() == StatusCode::CREATED {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(created, "writes did not recover after the store came back");
    assert_eq!(
        app.metric("snip_circuit_state{dependency=\"store\"}").await,
        0
    );
    assert_eq!(app.get_anon("/readyz").await.status(), StatusCode::OK);
    for code in &codes {
        assert!(app.redirect(code).await.status().is_redirection());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_answered_within_two_seconds_and_ends_within_one() {
    let Some((_db, proxy, url)) = database_behind_a_proxy().await else {
        return;
    };
    // The default store timeout (5 s): the connect timeout must answer first.
    let app = spawn_app_with(|c| c.database_url = url).await;
    let key = app.admin_key.clone();
    app.create_link_to(&key, "https://example.com/before").await;

    // The database stops. Creates and listings in flight at once, then more.
    proxy.set(Mode::Stopped);
    let mut calls = Vec::new();
    for i in 0..24 {
        let (client, base, key) = (app.client.clone(), app.base.clone(), key.clone());
        calls.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let req = if i % 2 == 0 {
                client
                    .post(format!("{base}/api/v1/links"))
                    .json(&json!({ "url": format!("https://example.com/{i}") }))
            } else {
                client.get(format!("{base}/api/v1/links?limit=5"))
            };
            let res = req.bearer_auth(key).send().await.unwrap();
            let retry_after = res.headers().contains_key("retry-after");
            (res.status(), retry_after, started.elapsed())
        }));
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let mut slowest = Duration::ZERO;
    for call in calls {
        let (status, retry_after, took) = call.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after);
        slowest = slowest.max(took);
    }
    eprintln!("slowest 503: {slowest:?}");
    assert!(
        slowest <= Duration::from_secs(2),
        "slowest 503 took {slowest:?}"
    );

    // A 503 given before the body is read (the key is looked up first) keeps the
    // connection: a client writing head and body apart sees no reset.
    let mut conn = common::raw::Raw::connect(app.addr).await;
    let body = json!({ "url": "https://example.com/split" }).to_string();
    let head = format!(
        "POST /api/v1/links HTTP/1.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json"
    );
    for _ in 0..3 {
        conn.send(&head, body.as_bytes()).await.unwrap();
        let answer = conn.answer().await.unwrap();
        assert_eq!((answer.status, answer.close), (503, false));
        conn.send("GET /healthz HTTP/1.1", b"").await.unwrap();
        assert_eq!(conn.answer().await.unwrap().status, 200);
    }

    // /readyz answers at once, from the background checks.
    let mut readyz_slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let res = app.get_anon("/readyz").await;
        readyz_slowest = readyz_slowest.max(started.elapsed());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    eprintln!("slowest /readyz: {readyz_slowest:?}");
    assert!(readyz_slowest <= Duration::from_millis(200));

    // The database is back: the circuit closes within a second, and writes go through.
    proxy.set(Mode::Pass);
    let back = std::time::Instant::now();
    let closed = loop {
        let res = app.get_anon("/readyz").await;
        let body: serde_json::Value = res.json().await.unwrap();
        if body["checks"]["store"]["circuit"] == "closed" && body["status"] == "ready" {
            break back.elapsed();
        }
        assert!(back.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("closed {closed:?} after the store came back");
    assert!(closed <= Duration::from_secs(1), "closed after {closed:?}");
    let res = app
        .post_link(&key, &json!({ "url": "https://example.com/after" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// A fresh PostgreSQL database reached through a proxy that can cut it off; its URL.
async fn database_behind_a_proxy() -> Option<(TestDb, Proxy, String)> {
    let db = TestDb::create().await?;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    Some((db, proxy, url))
}
