//! Graceful shutdown: on SIGTERM the real binary stops accepting, lets the request in flight
//! finish and exits cleanly; what that request wrote is there after a restart.

mod common;

use std::time::Duration;

use common::process::Snip;

const KEY: &str = "snip_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let snip = Snip::start(dir.path(), &db, KEY, "", &[]);
    let client = reqwest::Client::new();

    // A bulk create of 100 password-protected links takes a while (argon2 per item).
    let links: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"url": format!("https://example.com/{i}"), "password": "pw"}))
        .collect();
    let request = client
        .post(snip.url("/api/v1/links/bulk"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "links": links }))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    snip.terminate();

    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|r| r["status"] == 201));

    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    assert!(status.success(), "snip exited with {status}");

    // Everything the finished request created is there after a restart.
    let snip = Snip::start(dir.path(), &db, KEY, "", &[]);
    let page: serde_json::Value = client
        .get(snip.url("/api/v1/links?page=1&limit=1"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 100);
}
