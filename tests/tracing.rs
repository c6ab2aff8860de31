//! Distributed tracing: with `--otlp-endpoint`, a request's spans (request, cache, store)
//! reach an OTLP/HTTP collector in the caller's trace, and the response names the trace in
//! its `traceparent`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use common::process::Snip;

const KEY: &str = "snip_TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A collector that keeps every body posted to `/v1/traces`.
async fn collector() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_in_the_callers_trace() {
    let (endpoint, bodies) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let snip = Snip::start(dir.path(), &db, KEY, "", &["--otlp-endpoint", &endpoint]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = snip
        .post_json(
            &client,
            "/api/v1/links",
            KEY,
            &serde_json::json!({"url": "https://example.com/traced"}),
        )
        .await;
    let code = link["code"].as_str().unwrap();

    let res = client
        .get(snip.url(&format!("/{code}")))
        .header("traceparent", PARENT)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection());
    let returned = res.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        returned.starts_with(&format!("00-{TRACE_ID}-")),
        "the response is not in the caller's trace: {returned}"
    );
    assert!(
        !returned.contains("00f067aa0ba902b7"),
        "the span is the caller's own"
    );

    // Spans are sent in batches about every second; wait (bounded) for the redirect's.
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut exported = Vec::new();
    for _ in 0..100 {
        exported = bodies.lock().unwrap().concat();
        if contains(&exported, &trace_id) && contains(&exported, b"cache.get") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        contains(&exported, &trace_id),
        "no span of the caller's trace was exported"
    );
    for name in [&b"request"[..], b"cache.get", b"store"] {
        assert!(
            contains(&exported, name),
            "no {} span was exported",
            String::from_utf8_lossy(name)
        );
    }
}
