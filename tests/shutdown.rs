//! Graceful shutdown: on SIGTERM the real binary stops accepting, lets the request in flight
//! finish and exits cleanly; what that request wrote is there after a restart.

mod common;

use std::time::Duration;

use common::process::Snip;

const KEY: &str = "snip_SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let snip = Snip::on_sqlite(dir.path(), KEY, "");
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
    let snip = Snip::on_sqlite(dir.path(), KEY, "");
    let page = snip
        .get_json(&client, "/api/v1/links?page=1&limit=1", KEY)
        .await;
    assert_eq!(page["total"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_completes_every_accepted_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

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
    let mut tasks = Vec::new();
    // Redirects, many and short.
    for t in 0..12 {
        let (client, codes, terminated) = (client.clone(), codes.clone(), terminated.clone());
        let base = snip.url("/");
        tasks.push(tokio::spawn(async move {
            let mut completed = 0;
            for i in 0..2_000 {
                let code = &codes[(t + i) % codes.len()];
                match client.get(format!("{base}{code}")).send().await {
                    Ok(res) => {
                        assert!(res.status().is_redirection(), "got {}", res.status());
                        res.bytes().await.expect("an accepted redirect was cut off");
                        completed += 1;
                    }
                    // Not accepted: only once the server is stopping.
                    Err(e) => {
                        assert!(
                            terminated.load(Ordering::SeqCst),
                            "a request failed before SIGTERM: {e}"
                        );
                        break;
                    }
                }
            }
            completed
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
            match client.post(url).bearer_auth(KEY).json(&body).send().await {
                Ok(res) => {
                    assert_eq!(res.status(), 200);
                    let body: serde_json::Value =
                        res.json().await.expect("an accepted write was cut off");
                    let results = body["results"].as_array().unwrap();
                    assert_eq!(results.len(), 30);
                    assert!(results.iter().all(|r| r["status"] == 201));
                    1
                }
                Err(e) => {
                    assert!(terminated.load(Ordering::SeqCst), "{e}");
                    0
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    terminated.store(true, Ordering::SeqCst);
    snip.terminate();
    let mut completed = 0;
    for t in tasks {
        completed += t.await.expect("a client task failed");
    }
    assert!(
        completed > 12,
        "too few requests completed to mean anything: {completed}"
    );
    let status = tokio::task::spawn_blocking(move || snip.wait())
        .await
        .unwrap();
    assert!(status.success(), "snip exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_says_so_on_readyz_and_keeps_serving_until_the_drain_ends() {
    let app = common::spawn_app_with(|c| c.shutdown_drain_secs = 2).await;
    let code = app
        .create_link_to(&app.admin_key, "https://example.com/drain")
        .await;
    assert_eq!(app.get_anon("/readyz").await.status(), 200);

    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = app.get_anon("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
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
