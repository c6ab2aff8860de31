//! The topology of `compose.yaml`, proven on loopback without containers: nginx (with
//! `deploy/nginx/locations.conf` as it is) in front of two snip nodes, plus one click
//! worker, on PostgreSQL, Redis and NATS JetStream. Through the balancer: create and
//! redirect; a change made on one node is obeyed by the other within a second; the nodes
//! share one rate-limit budget; one node is stopped with SIGTERM under steady load and no
//! request fails; every click is counted exactly once.
//!
//! Each node here serves the API and redirects (role `all`), so that either can carry all
//! the traffic while the other stops; compose.yaml splits those roles across services.
//!
//! `.ci/run` installs nginx from Debian. Without it this test is skipped loudly on a
//! laptop, and fails in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::nats::Names;
use common::postgres::TestDb;
use common::process::Snip;
use common::redis::{free_port, unique_prefix};
use serde_json::{Value, json};

const KEY: &str = "snip_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD";
const NGINX: &str = "/usr/sbin/nginx";
/// Writes the key may make, shared by both nodes.
const WRITE_BUDGET: u32 = 30;

fn nginx_installed() -> bool {
    if Path::new(NGINX).is_file() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("nginx is not installed ({NGINX}; see .ci/run), and CI must run this test");
    }
    eprintln!("\n!!! SKIPPED: nginx is not installed ({NGINX}) !!!\n");
    false
}

/// nginx in the foreground, with a configuration of its own in `dir`.
struct Nginx(Child);

impl Nginx {
    /// Starts nginx on `port` with both upstreams on `nodes` and waits until it answers.
    fn start(dir: &Path, port: u16, nodes: &[&Snip]) -> Nginx {
        let servers: String = nodes
            .iter()
            .map(|n| {
                let addr = n.url("").trim_start_matches("http://").to_owned();
                format!("        server {addr} max_fails=1 fail_timeout=5s;\n")
            })
            .collect();
        let locations =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/locations.conf");
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n\
             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             upstream snip_api {{\n{servers}        keepalive 16;\n    }}\n\
             upstream snip_redirect {{\n{servers}        keepalive 64;\n    }}\n\
             server {{\n        listen 127.0.0.1:{port};\n        include {};\n    }}\n}}\n",
            locations.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx(child)
    }
}

impl Drop for Nginx {
    /// Stops nginx with SIGTERM, so its master stops its workers too (SIGKILL would leave
    /// them serving the port); SIGKILL only if it has not stopped within five seconds.
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_two_nodes_and_a_worker_act_as_one_service() {
    if !nginx_installed() {
        return;
    }
    let (Some(redis), Some(nats)) = (common::redis::shared(), common::nats::shared()) else {
        return;
    };
    let Some(db) = TestDb::create().await else {
        return;
    };
    let names = Names::unique();
    let dir = tempfile::tempdir().unwrap();
    // nginx's workers may run as another user: let them use its folder.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let config = format!(
        "base_url = \"{front}\"\nredis_prefix = \"{}\"\nredis_timeout_ms = 1000\n\
         nats_stream = \"{}\"\nnats_subject = \"{}\"\nnats_durable = \"{}\"\n\
         shutdown_drain_secs = 1\nshutdown_grace_secs = 10\n\
         [rate_limits]\nnodes = 2\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [rate_limits.writes]\ncapacity = {WRITE_BUDGET}.0\nrefill_per_sec = 0.001\n\
         [rate_limits.redirects]\ncapacity = 1000000.0\nrefill_per_sec = 1000000.0\n",
        unique_prefix("deploy"),
        names.stream,
        names.subject,
        names.durable
    );
    let node = |role: &str| {
        Snip::start(
            dir.path(),
            &db.url,
            KEY,
            &config,
            &["--redis", &redis, "--nats", &nats, "--role", role],
        )
    };
    let a = node("all");
    let b = node("all");
    let worker = node("worker");
    let _nginx = Nginx::start(dir.path(), port, &[&a, &b]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let mut writes = 0;

    // Create and redirect through the balancer.
    let res = client
        .post(format!("{front}/api/v1/links"))
        .bearer_auth(KEY)
        .json(&json!({"url": "https://example.com/before", "alias": "deployed"}))
        .send()
        .await
        .unwrap();
    writes += 1;
    assert_eq!(res.status(), 201);
    let link: Value = res.json().await.unwrap();
    assert_eq!(link["short_url"], format!("{front}/deployed"));
    let mut clicks = 0;
    let res = client
        .get(format!("{front}/deployed"))
        .send()
        .await
        .unwrap();
    clicks += 1;
    assert_eq!(res.status(), 302);

    // Node b holds the link in its cache; a change made on node a reaches it within 1 s.
    let location = |res: &reqwest::Response| res.headers()["location"].to_str().unwrap().to_owned();
    let res = client.get(b.url("/deployed")).send().await.unwrap();
    clicks += 1;
    assert_eq!(location(&res), "https://example.com/before");
    let res = client
        .patch(a.url("/api/v1/links/deployed"))
        .bearer_auth(KEY)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"url": "https://example.com/after"}"#)
        .send()
        .await
        .unwrap();
    writes += 1;
    assert_eq!(res.status(), 200);
    let changed = Instant::now();
    loop {
        let res = client.get(b.url("/deployed")).send().await.unwrap();
        clicks += 1;
        if location(&res) == "https://example.com/after" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "node b still redirects to the old URL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Steady load through nginx while node a is stopped with SIGTERM: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..6)
        .map(|_| {
            let (client, stop, url) = (client.clone(), stop.clone(), format!("{front}/deployed"));
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(res) if res.status() == 302 => ok += 1,
                        Ok(res) => failed.push(format!("status {}", res.status())),
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.terminate();
    let exited = tokio::task::spawn_blocking(move || a.wait());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    let mut served = 0;
    for task in load {
        let (ok, failed) = task.await.unwrap();
        served += ok;
        failures.extend(failed);
    }
    assert!(
        exited.await.unwrap().success(),
        "node a did not exit cleanly"
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed at the balancer: {:?}",
        failures.len(),
        served + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(served > 100, "too little load to mean anything: {served}");
    clicks += served;

    // Every click is counted once: node a flushed its queue before it exited, and the
    // worker and node b applied each event once.
    let counted = |client: reqwest::Client, front: String| async move {
        let res = client
            .get(format!("{front}/api/v1/links/deployed"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["clicks"]
            .as_u64()
            .unwrap()
    };
    let waited = Instant::now();
    let mut seen = 0;
    while waited.elapsed() < Duration::from_secs(60) {
        seen = counted(client.clone(), front.clone()).await;
        if seen >= clicks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, clicks, "clicks counted vs clicks served");
    // The click workers write every 200 ms: a second more shows nothing counted twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(counted(client.clone(), front.clone()).await, clicks);

    // One write budget for the key, whichever node nginx picks.
    let mut created = 0;
    for i in 0..WRITE_BUDGET {
        let res = client
            .post(format!("{front}/api/v1/links"))
            .bearer_auth(KEY)
            .json(&json!({"url": format!("https://example.com/{i}")}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            201 => created += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        created,
        WRITE_BUDGET - writes,
        "the budget is shared, not per node"
    );

    drop(worker);
    drop(b);
    names.clean(&nats).await;
}
