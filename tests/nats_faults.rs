//! NATS stops during traffic and comes back: no redirect fails, and every click made while
//! it was away is counted once it returns — those that do not fit the bounded memory queue
//! wait on disk (the spill), across a restart of snip too.

mod common;

use std::time::Duration;

use common::nats::{Names, PrivateNats};
use common::process::Snip;
use common::*;
use reqwest::StatusCode;

async fn follow(app: &TestApp, code: &str, n: usize) {
    for _ in 0..n {
        let res = app
            .client
            .get(app.url(&format!("/{code}")))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicks_made_while_nats_is_down_are_counted_after_it_returns() {
    let Some(mut nats) = PrivateNats::start() else {
        return;
    };
    let names = Names::unique();
    let url = nats.url();
    let app = spawn_app_with(|c| names.configure(&url, c)).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/n")
        .await;

    follow(&app, &code, 300).await;
    nats.kill();
    follow(&app, &code, 300).await;
    // Publishing fails, so NATS's circuit opens: it is probed, not hammered.
    let circuit = "snip_circuit_state{dependency=\"nats\"}";
    let mut opened = false;
    for _ in 0..150 {
        if app.metric(circuit).await != 0 {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opened, "the NATS circuit never opened while NATS was down");
    nats.resume().unwrap();

    // Events NATS had sent to the worker when it died are delivered again after the
    // consumer's acknowledgement wait (10 s); those already written are skipped.
    let written = "snip_click_events_total{state=\"written\"}";
    let mut stats = serde_json::Value::Null;
    for _ in 0..600 {
        stats = expect_json(
            app.get(&format!("/api/v1/links/{code}/stats"), &app.admin_key)
                .await,
            StatusCode::OK,
        )
        .await;
        if stats["total"] == 600 && app.metric(written).await == 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["total"], 600);
    assert_eq!(stats["humans"], 600);
    assert_eq!(app.metric(written).await, 600, "each event written once");
    assert_eq!(
        app.metric("snip_click_events_total{state=\"dropped\"}")
            .await,
        0
    );
    assert_eq!(
        app.metric(circuit).await,
        0,
        "closed again once NATS answers"
    );
}

/// Follows `code` `n` times at about 500 a second (50 every 100 ms).
async fn follow_paced(client: &reqwest::Client, url: &str, n: usize) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for batch in 0..n.div_ceil(50) {
        tick.tick().await;
        for _ in 0..50.min(n - batch * 50) {
            let res = client.get(url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FOUND);
        }
    }
}

/// Waits until the link's statistics count `total` clicks; returns what they count.
async fn counted(client: &reqwest::Client, stats_url: &str, key: &str, total: u64) -> u64 {
    let mut seen = 0;
    for _ in 0..600 {
        let res = client.get(stats_url).bearer_auth(key).send().await.unwrap();
        if res.status() == StatusCode::OK {
            let stats: serde_json::Value = res.json().await.unwrap();
            seen = stats["total"].as_u64().unwrap_or(0);
            if seen >= total {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// The memory queue holds 200 events (0.4 s at 500 redirects a second); NATS is away for
/// 1,500 redirects (3 s, over seven times that): none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_memory_queue_loses_no_click() {
    let Some(mut nats) = PrivateNats::start() else {
        return;
    };
    let names = Names::unique();
    let url = nats.url();
    let app = spawn_app_with(|c| {
        names.configure(&url, c);
        c.click_queue_capacity = 200;
    })
    .await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/spill")
        .await;
    let link = app.url(&format!("/{code}"));
    follow_paced(&app.client, &link, 100).await;
    nats.kill();
    follow_paced(&app.client, &link, 1_500).await;
    // They went to disk (once the first publish to the dead server gave up).
    let mut spilled = 0;
    for _ in 0..100 {
        spilled = app
            .metric("snip_click_events_total{state=\"spilled\"}")
            .await;
        if spilled >= 1_400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(spilled >= 1_400, "only {spilled} events spilled");
    nats.resume().unwrap();

    let stats = app.url(&format!("/api/v1/links/{code}/stats"));
    assert_eq!(
        counted(&app.client, &stats, &app.admin_key, 1_600).await,
        1_600
    );
    assert_eq!(
        app.metric("snip_click_events_total{state=\"dropped\"}")
            .await,
        0
    );
    // Counted once each, however often the spill's events were offered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        counted(&app.client, &stats, &app.admin_key, 1_600).await,
        1_600
    );
}

/// The same, with snip stopped and started again in the middle of the outage: what was
/// spilled before the restart is counted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_outage_loses_no_click() {
    const KEY: &str = "snip_NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN";
    let Some(mut nats) = PrivateNats::start() else {
        return;
    };
    let names = Names::unique();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "nats_url = {:?}\nnats_stream = {:?}\nnats_subject = {:?}\nnats_durable = {:?}\n\
         click_queue_capacity = 200\n[rate_limits]\nenabled = false\n",
        nats.url(),
        names.stream,
        names.subject,
        names.durable
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let snip = Snip::on_sqlite(dir.path(), KEY, &config);
    let link = snip
        .post_json(
            &client,
            "/api/v1/links",
            KEY,
            &serde_json::json!({ "url": "https://example.com/restart" }),
        )
        .await;
    let code = link["code"].as_str().unwrap().to_owned();

    nats.kill();
    follow_paced(&client, &snip.url(&format!("/{code}")), 800).await;
    snip.terminate();
    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    assert!(status.success(), "snip exited with {status}");

    let snip = Snip::on_sqlite(dir.path(), KEY, &config);
    follow_paced(&client, &snip.url(&format!("/{code}")), 800).await;
    nats.resume().unwrap();
    let stats = snip.url(&format!("/api/v1/links/{code}/stats"));
    assert_eq!(counted(&client, &stats, KEY, 1_600).await, 1_600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_degraded_while_nats_is_down_and_ready_when_it_returns() {
    let Some(mut nats) = PrivateNats::start() else {
        return;
    };
    let names = Names::unique();
    let url = nats.url();
    let app = spawn_app_with(|c| names.configure(&url, c)).await;
    // Waits (bounded) until /readyz says `status` with NATS `nats_state`; returns the body.
    let ready_when = |status: &'static str, nats_state: &'static str| {
        let app = &app;
        async move {
            let mut body = serde_json::Value::Null;
            for _ in 0..100 {
                let res = app.get_anon("/readyz").await;
                // The store answers: 200 either way.
                body = expect_json(res, StatusCode::OK).await;
                if body["status"] == status && body["checks"]["nats"]["state"] == nats_state {
                    return body;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("/readyz did not turn {status} with NATS {nats_state}: {body}");
        }
    };
    ready_when("ready", "up").await;

    nats.kill();
    let body = ready_when("degraded", "down").await;
    assert_eq!(body["checks"]["store"]["state"], "up", "{body}");
    // Redirects go on meanwhile.
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/deg")
        .await;
    assert_eq!(app.redirect(&code).await.status(), StatusCode::FOUND);

    nats.resume().unwrap();
    ready_when("ready", "up").await;
}
