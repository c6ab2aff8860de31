//! Graceful shutdown: on SIGTERM the real binary stops accepting, lets the request in flight
//! finish and exits cleanly; what that request wrote is there after a restart.

mod common;

use std::time::{Duration, Instant};

use common::process::Snip;

const KEY: &str = "snip_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS";

/// Waits (at most 10 s) until the router has started on a request.
async fn wait_for_request_start(snip: &Snip) {
    let started = Instant::now();
    while !snip.log().contains("started processing request") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the request did not reach the router:\n{}",
            snip.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts snip with `config`, the router logging each request it starts, and sends it a
/// bulk create of `links` password-protected links (argon2 for each: seconds of work).
/// Returns once the router has started on that request.
async fn start_with_a_slow_request(
    dir: &std::path::Path,
    config: &str,
    links: usize,
) -> (
    Snip,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let db = format!("sqlite://{}/snip.db", dir.display());
    let mut cmd = Snip::command(dir, &db, config);
    // At debug, the router logs each request it starts on.
    cmd.env("SNIP_BOOTSTRAP_ADMIN_KEY", KEY)
        .env("RUST_LOG", "info,tower_http=debug");
    let snip = Snip::spawn(cmd);
    let links: Vec<_> = (0..links)
        .map(|i| serde_json::json!({"url": format!("https://example.com/{i}"), "password": "pw"}))
        .collect();
    let request = reqwest::Client::new()
        .post(snip.url("/api/v1/links/bulk"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "links": links }))
        .send();
    let in_flight = tokio::spawn(request);
    wait_for_request_start(&snip).await;
    (snip, in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (snip, in_flight) = start_with_a_slow_request(dir.path(), "", 100).await;
    let client = reqwest::Client::new();
    assert!(!in_flight.is_finished(), "the request ended before SIGTERM");
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
    let snip = Snip::on_sqlite(dir.path(), KEY, "");
    let page = snip
        .get_json(&client, "/api/v1/links?page=1&limit=1", KEY)
        .await;
    assert_eq!(page["total"], 100);
}

/// Each client task of the burst: how many redirects it saw answered, and how many writes.
#[derive(Default)]
struct Answered {
    redirects: i64,
    writes: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_completes_every_accepted_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let snip = Snip::on_sqlite(dir.path(), KEY, "[rate_limits]\nenabled = false\n");
    // A new connection per request, so no request is sent on a connection the server has
    // already decided to close.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let links: Vec<_> = (0..20)
        .map(|i| serde_json::json!({"url": format!("https://example.com/{i}")}))
        .collect();
    let created = snip
        .post_json(
            &client,
            "/api/v1/links/bulk",
            KEY,
            &serde_json::json!({ "links": links }),
        )
        .await;
    let codes: Vec<String> = created["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["link"]["code"].as_str().unwrap().to_owned())
        .collect();

    let terminated = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Redirects, many and short.
    for t in 0..12 {
        let (client, codes, terminated) = (client.clone(), codes.clone(), terminated.clone());
        let progress = progress.clone();
        let base = snip.url("/");
        tasks.push(tokio::spawn(async move {
            let mut answered = Answered::default();
            for i in 0..2_000 {
                let code = &codes[(t + i) % codes.len()];
                match client.get(format!("{base}{code}")).send().await {
                    Ok(res) => {
                        assert!(res.status().is_redirection(), "got {}", res.status());
                        res.bytes().await.expect("an accepted redirect was cut off");
                        answered.redirects += 1;
                        progress.fetch_add(1, Ordering::SeqCst);
                    }
                    // Not answered: only once the server is stopping.
                    Err(e) => {
                        assert!(
                            terminated.load(Ordering::SeqCst),
                            "a request failed before SIGTERM: {e}"
                        );
                        break;
                    }
                }
            }
            answered
        }));
    }
    // Writes, few and slow (argon2 for every password-protected link).
    for t in 0..3 {
        let (client, terminated) = (client.clone(), terminated.clone());
        let url = snip.url("/api/v1/links/bulk");
        tasks.push(tokio::spawn(async move {
            let links: Vec<_> = (0..30)
                .map(|i| {
                    serde_json::json!({"url": format!("https://example.com/{t}/{i}"), "password": "pw"})
                })
                .collect();
            let body = serde_json::json!({ "links": links });
            let mut answered = Answered::default();
            match client.post(url).bearer_auth(KEY).json(&body).send().await {
                Ok(res) => {
                    assert_eq!(res.status(), 200);
                    let body: serde_json::Value =
                        res.json().await.expect("an accepted write was cut off");
                    let results = body["results"].as_array().unwrap();
                    assert_eq!(results.len(), 30);
                    assert!(results.iter().all(|r| r["status"] == 201));
                    answered.writes += 1;
                }
                Err(e) => assert!(terminated.load(Ordering::SeqCst), "{e}"),
            }
            answered
        }));
    }
    // SIGTERM once the burst is well under way (the writes take longer than this).
    let started = Instant::now();
    while progress.load(Ordering::SeqCst) < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the burst did not get going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    terminated.store(true, Ordering::SeqCst);
    snip.terminate();
    let mut answered = Answered::default();
    for t in tasks {
        let a = t.await.expect("a client task failed");
        answered.redirects += a.redirects;
        answered.writes += a.writes;
    }
    assert!(
        answered.redirects + answered.writes > 12,
        "too few requests completed to mean anything: {} redirects, {} writes",
        answered.redirects,
        answered.writes
    );
    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    assert!(status.success(), "snip exited with {status}");

    // What the server did is what the clients were told: a request it took up and then cut
    // off would leave a click or a link that no client saw answered.
    let snip = Snip::on_sqlite(dir.path(), KEY, "[rate_limits]\nenabled = false\n");
    let page = snip
        .get_json(&client, "/api/v1/links?page=1&limit=1", KEY)
        .await;
    assert_eq!(
        page["total"],
        20 + 30 * answered.writes,
        "links created by writes whose answer was cut off"
    );
    let mut clicks = 0;
    for code in &codes {
        let link = snip
            .get_json(&client, &format!("/api/v1/links/{code}"), KEY)
            .await;
        clicks += link["clicks"].as_i64().expect("clicks");
    }
    assert_eq!(
        clicks, answered.redirects,
        "clicks counted for redirects whose answer was cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_says_so_on_readyz_and_keeps_serving_until_the_drain_ends() {
    let app = common::spawn_app_with(|c| c.shutdown_drain_secs = 2).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/drain")
        .await;
    assert_eq!(app.get_anon("/readyz").await.status(), 200);

    app.shutdown.cancel();
    let started = Instant::now();
    let body = loop {
        let ready = app.get_anon("/readyz").await;
        if ready.status() == 503 {
            break ready.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/readyz still answers {} after the shutdown began",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(body["status"], "draining");
    // Still serving: redirects and the API answer as before.
    assert!(app.redirect(&code).await.status().is_redirection());
    assert_eq!(app.get_anon("/healthz").await.status(), 200);

    // Once the drain is over, the node stops accepting.
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tokio::net::TcpStream::connect(app.addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the node still accepts connections after its drain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_grace_period_is_cut_off_and_snip_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (snip, in_flight) =
        start_with_a_slow_request(dir.path(), "shutdown_grace_secs = 1\n", 300).await;
    snip.terminate();
    let terminated = Instant::now();

    let answer = in_flight.await.unwrap();
    assert!(
        answer.is_err(),
        "the request was answered {:?} instead of cut off",
        answer.map(|r| r.status())
    );
    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    let took = terminated.elapsed();
    assert!(status.success(), "snip exited with {status}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "snip exited {took:?} after SIGTERM, not after the 1 s grace period"
    );
}
