//! Two `snip` processes on one Redis (and one store): they share one rate-limit budget, and
//! a change made through one is obeyed by the other within a second.

mod common;

use std::time::{Duration, Instant};

use common::process::Snip;
use common::redis::{shared, unique_prefix};

const KEY: &str = "snip_NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN";

fn config(prefix: &str) -> String {
    // Writes: a burst of 20 and practically no refill during the test. A Redis call may
    // take up to a second here, so that a loaded machine does not send the limiter to its
    // local fallback (which the budget test checks did not happen).
    format!(
        "redis_prefix = \"{prefix}\"\nredis_timeout_ms = 1000\n\
         [rate_limits]\nnodes = 2\n\
         [rate_limits.writes]\ncapacity = 20.0\nrefill_per_sec = 0.001\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_write_budget() {
    let Some(redis) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let cfg = config(&unique_prefix("budget"));
    let a = Snip::start(dir.path(), &db, KEY, &cfg, &["--redis", &redis]);
    let b = Snip::start(dir.path(), &db, KEY, &cfg, &["--redis", &redis]);
    let client = reqwest::Client::new();

    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/api/v1/links")
            } else {
                b.url("/api/v1/links")
            };
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(KEY)
                    .json(&serde_json::json!({"url": format!("https://example.com/{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => created += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        (19..=21).contains(&created),
        "{created} created over a shared budget of 20"
    );
    // The budget is spent on both nodes, not only on the one that refused last.
    for node in [&a, &b] {
        let res = client
            .post(node.url("/api/v1/links"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"url": "https://example.com/after"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            429,
            "a node still takes writes after the burst"
        );
    }
    // Every decision above was Redis's, none a node's local fallback.
    for node in [&a, &b] {
        let text = client
            .get(node.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("snip_rate_limit_fallback_total "))
            .unwrap_or_else(|| panic!("no fallback counter in:\n{text}"));
        assert_eq!(line, "snip_rate_limit_fallback_total 0", "{line}");
    }
    // A refused write created nothing: the store holds exactly the links answered 201.
    let page = a
        .get_json(&client, "/api/v1/links?page=1&limit=1", KEY)
        .await;
    assert_eq!(page["total"], created, "links in the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_one_node_is_obeyed_by_the_other_within_a_second() {
    let Some(redis) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let cfg = config(&unique_prefix("invalidate"));
    let a = Snip::start(dir.path(), &db, KEY, &cfg, &["--redis", &redis]);
    let b = Snip::start(dir.path(), &db, KEY, &cfg, &["--redis", &redis]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |res: &reqwest::Response| {
        res.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
    };

    let res = client
        .post(a.url("/api/v1/links"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": "https://example.com/v1", "alias": "moving"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // B caches the link in its L1.
    for _ in 0..3 {
        let res = client.get(b.url("/moving")).send().await.unwrap();
        assert_eq!(location(&res).as_deref(), Some("https://example.com/v1"));
    }
    let res = client
        .patch(a.url("/api/v1/links/moving"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"url": "https://example.com/v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    loop {
        let res = client.get(b.url("/moving")).send().await.unwrap();
        if location(&res).as_deref() == Some("https://example.com/v2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still redirects to the old URL after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And a delete through A is obeyed by B as well.
    let res = client
        .delete(a.url("/api/v1/links/moving"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let started = Instant::now();
    while client.get(b.url("/moving")).send().await.unwrap().status() != 410 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still redirects a deleted link"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
