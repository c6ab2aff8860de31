//! What the logs hold: a request id on the lines of a request, and never a secret — no API
//! key, no link password, no sign-in token, no client address — even at the most verbose
//! level.

mod common;

use std::time::{Duration, Instant};

use common::process::Snip;

const KEY: &str = "snip_LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL";
const PASSWORD: &str = "correct-horse-battery-staple";
const CLIENT_IP: &str = "203.0.113.77";
const SIGN_IN_TOKEN: &str = "5e1f0b6c2d9a4e7f8a3b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/snip.db", dir.path().display());
    let mut cmd = Snip::command(
        dir.path(),
        &db,
        "[rate_limits]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    cmd.env("SNIP_BOOTSTRAP_ADMIN_KEY", KEY)
        .env("RUST_LOG", "trace");
    let snip = Snip::spawn(cmd);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = snip
        .post_json(
            &client,
            "/api/v1/links",
            KEY,
            &serde_json::json!({"url": "https://example.com/secret", "password": PASSWORD}),
        )
        .await;
    let code = link["code"].as_str().unwrap();
    let unlocked = client
        .post(snip.url(&format!("/{code}")))
        .header("x-forwarded-for", CLIENT_IP)
        .header("x-request-id", "req-from-the-test")
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(unlocked.status().is_redirection());
    assert_eq!(unlocked.headers()["x-request-id"], "req-from-the-test");
    // A wrong key and a wrong password are logged about too, without their values.
    let denied = client
        .get(snip.url("/api/v1/me"))
        .bearer_auth("snip_WRONGWRONGWRONGWRONGWRONGWRONGWR")
        .header("x-forwarded-for", CLIENT_IP)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    // A sign-in link's path holds its token (here one that was never made).
    let welcome = client
        .get(snip.url(&format!("/app/welcome/{SIGN_IN_TOKEN}")))
        .send()
        .await
        .unwrap();
    assert!(welcome.status().is_client_error());

    snip.terminate();
    // The last line a clean shutdown logs: after it, the log is complete.
    let started = Instant::now();
    while !snip.log().contains("\"stopped\"") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "snip did not log its stop:\n{}",
            snip.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = snip.log();
    assert!(
        log.contains("req-from-the-test"),
        "the request id is not on the request's log lines:\n{log}"
    );
    for (what, secret) in [
        ("the API key", KEY),
        ("the wrong API key", "snip_WRONGWRONGWRONGWRONGWRONGWRONGWR"),
        ("the link password", PASSWORD),
        ("the client's address", CLIENT_IP),
        ("a sign-in link's token", SIGN_IN_TOKEN),
    ] {
        assert!(!log.contains(secret), "{what} is in the logs");
    }
}
