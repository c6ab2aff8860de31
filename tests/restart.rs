//! Durability: links acknowledged with 201 survive the process being killed with SIGKILL
//! while writes are in flight. Runs the real `snip` binary on a temp SQLite file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "snip_RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR";

/// Starts `snip serve` on a free port and returns the child and its address.
fn start(db: &str, config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_snip"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", db])
        .arg("--config")
        .arg(config)
        .env("SNIP_BOOTSTRAP_ADMIN_KEY", KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn snip");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The JSON log line `"message":"listening","addr":"127.0.0.1:PORT"` names the port.
    let addr = loop {
        let line = lines
            .next()
            .expect("snip exited before listening")
            .expect("read log line");
        if line.contains("\"listening\"") {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            break v["addr"].as_str().expect("addr field").to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_links_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    // This test measures durability, not rate limits.
    let config = dir.path().join("snip.toml");
    std::fs::write(&config, "[rate_limits]\nenabled = false\n").unwrap();
    let (mut child, addr) = start(&db, &config);
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();

    // Four writers create links until the process dies under them.
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, addr, acked) = (client.clone(), addr.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..2_000 {
                let url = format!("https://example.com/{w}/{i}");
                let res = client
                    .post(format!("http://{addr}/api/v1/links"))
                    .bearer_auth(KEY)
                    .json(&serde_json::json!({"url": url, "tags": ["t"]}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let body: serde_json::Value = match r.json().await {
                            Ok(b) => b,
                            Err(_) => return,
                        };
                        let code = body["code"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push((code, url));
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
    child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 200,
        "only {} links acknowledged",
        acked.len()
    );

    let (mut child, addr) = start(&db, &config);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut missing = Vec::new();
    for (code, url) in &acked {
        let res = client
            .get(format!("http://{addr}/{code}"))
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        if res.status() != 302 || location.as_deref() != Some(url.as_str()) {
            missing.push(code.clone());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged links lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}
