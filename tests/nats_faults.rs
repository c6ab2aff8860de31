//! NATS stops during traffic and comes back: no redirect fails, and every click made while
//! it was away is counted once it returns (they wait in the bounded local queue).

mod common;

use std::time::Duration;

use common::nats::{Names, PrivateNats};
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
