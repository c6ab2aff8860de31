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
    // The names of the exported spans of the caller's trace, and the request span's parent.
    let mut names = Vec::new();
    for _ in 0..100 {
        let exported = bodies.lock().unwrap().clone();
        names = exported
            .iter()
            .flat_map(|body| spans(body))
            .filter(|span| span.trace_id == trace_id)
            .collect();
        if names.iter().any(|s| s.name == "cache.get") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !names.is_empty(),
        "no span of the caller's trace was exported"
    );
    for name in ["request", "cache.get", "store"] {
        assert!(
            names.iter().any(|s| s.name == name),
            "no {name} span in the caller's trace: {names:?}"
        );
    }
    let parent: Vec<u8> = (0..8)
        .map(|i| u8::from_str_radix(&PARENT[36 + 2 * i..38 + 2 * i], 16).unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|s| s.name == "request" && s.parent_span_id == parent),
        "the request span is not a child of the caller's span: {names:?}"
    );
}

/// What the test reads of one exported span.
#[derive(Debug)]
struct Span {
    trace_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    name: String,
}

/// The spans of one OTLP `ExportTraceServiceRequest` (protobuf): resource_spans (1) →
/// scope_spans (2) → spans (2), each with trace_id (1), parent_span_id (4) and name (5).
fn spans(body: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    for resource in message_fields(body, 1) {
        for scope in message_fields(resource, 2) {
            for span in message_fields(scope, 2) {
                let one = |n| message_fields(span, n).first().map(|b| b.to_vec());
                out.push(Span {
                    trace_id: one(1).unwrap_or_default(),
                    parent_span_id: one(4).unwrap_or_default(),
                    name: String::from_utf8(one(5).unwrap_or_default()).expect("UTF-8 name"),
                });
            }
        }
    }
    out
}

/// The length-delimited fields numbered `number` of a protobuf message, skipping the rest.
fn message_fields(mut msg: &[u8], number: u64) -> Vec<&[u8]> {
    fn varint(buf: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let (b, rest) = buf.split_first().expect("truncated varint");
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut found = Vec::new();
    while !msg.is_empty() {
        let key = varint(&mut msg);
        let len = match key & 7 {
            0 => {
                varint(&mut msg);
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut msg)).unwrap(),
            5 => 4,
            other => panic!("unexpected protobuf wire type {other}"),
        };
        let (value, rest) = msg.split_at(len);
        if key & 7 == 2 && key >> 3 == number {
            found.push(value);
        }
        msg = rest;
    }
    found
}
