//! Durability: links acknowledged with 201 survive the process being killed with SIGKILL
//! while writes are in flight. Runs the real `snip` binary on a temp SQLite file.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::Snip;

const KEY: &str = "snip_RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR";
/// This test measures durability, not rate limits.
const CONFIG: &str = "[rate_limits]\nenabled = false\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_links_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let mut snip = Snip::start(dir.path(), &db, KEY, CONFIG, &[]);
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();

    // Four writers create links until the process dies under them.
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, acked) = (client.clone(), snip.url("/api/v1/links"), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..2_000 {
                let target = format!("https://example.com/{w}/{i}");
                let res = client
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&serde_json::json!({"url": target, "tags": ["t"]}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let Ok(body) = r.json::<serde_json::Value>().await else {
                            return;
                        };
                        let code = body["code"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push((code, target));
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Kill once a good number of writes are acknowledged, with more in flight.
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    snip.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 200,
        "only {} links acknowledged",
        acked.len()
    );

    let snip = Snip::start(dir.path(), &db, KEY, CONFIG, &[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut missing = Vec::new();
    for (code, target) in &acked {
        let res = client
            .get(snip.url(&format!("/{code}")))
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        if res.status() != 302 || location.as_deref() != Some(target.as_str()) {
            missing.push(code.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged links lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}
