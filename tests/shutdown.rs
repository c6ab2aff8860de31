//! Graceful shutdown: on SIGTERM the real binary stops accepting, lets the request in flight
//! finish and exits cleanly; what that request wrote is there after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY: &str = "snip_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS";

fn start(db: &str) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", db])
        .env("SNIP_BOOTSTRAP_ADMIN_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn snip");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("snip exited early").expect("log line");
        if line.contains("\"listening\"") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
            break v["addr"].as_str().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let (mut child, addr) = start(&db);
    let client = reqwest::Client::new();

    // A bulk create of 100 password-protected links takes a while (argon2 per item).
    let links: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"url": format!("https://example.com/{i}"), "password": "pw"}))
        .collect();
    let request = client
        .post(format!("http://{addr}/api/v1/links/bulk"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "links": links }))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    let res = in_flight.await.unwrap().expect("the in-flight request was cut off");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    assert!(results.iter().all(|r| r["status"] == 201));

    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "snip exited with {status}");

    // Everything the finished request created is there after a restart.
    let (mut child, addr) = start(&db);
    let page: serde_json::Value = client
        .get(format!("http://{addr}/api/v1/links?page=1&limit=1"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(page["total"], 100);
}
