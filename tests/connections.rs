//! Keep-alive connections end only cleanly. An answer given before the request body is
//! read (401, 403, 404, 405, 413, 415, 429, the redirect path) leaves the connection usable,
//! or says `Connection: close` and closes it cleanly; a draining node tells each client to
//! go elsewhere. The client here writes the head and the body in two writes, as browsers
//! and many HTTP libraries do, and no client may see a reset.

mod common;

use std::io;
use std::time::Duration;

use common::raw::Raw;
use common::spawn_app_with;
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_keep_the_connection_or_close_it_cleanly() {
    let app = spawn_app_with(|c| {
        c.body_limit = 100 * 1024;
        c.rate_limits.writes.capacity = 30.0;
    })
    .await;
    let (_, key) = app.create_user("early@example.com").await;
    let (_, spent) = app.create_user("spent@example.com").await;
    let read_only = app
        .create_key(1, &app.admin_key, &json!({ "scopes": ["links:read"] }))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The second user's write budget (30 tokens, never refilled here) is spent.
    for _ in 0..30 {
        app.post_link(&spent, &json!({ "url": "https://example.com/" }))
            .await;
    }
    let link = json!({ "url": "https://example.com/early" }).to_string();
    let json_post = |path: &str, key: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json"
        )
    };
    let cases = [
        (json_post("/api/v1/links", "snip_bad"), 401),
        (json_post("/api/v1/links", &read_only), 403),
        (json_post("/api/v1/nowhere", &key), 404),
        (json_post("/api/v1/users/me/keys/1/x", &key), 404),
        (
            format!("PUT /api/v1/links HTTP/1.1\r\nAuthorization: Bearer {key}"),
            405,
        ),
        (
            format!(
                "POST /api/v1/links HTTP/1.1\r\nAuthorization: Bearer {key}\r\nContent-Type: text/plain"
            ),
            415,
        ),
        (json_post("/api/v1/links", &spent), 429),
        // The redirect path reads no body.
        ("GET /nosuchcode HTTP/1.1".to_owned(), 404),
    ];
    for (head, status) in &cases {
        let mut conn = Raw::connect(app.addr).await;
        for round in 0..3 {
            conn.send(head, link.as_bytes()).await.unwrap();
            let answer = conn
                .answer()
                .await
                .unwrap_or_else(|e| panic!("{head} (round {round}): {e}"));
            assert_eq!(answer.status, *status, "{head}");
            assert!(
                !answer.close,
                "{head}: a small body is read, the connection kept"
            );
            // The same connection serves the next request.
            conn.send("GET /healthz HTTP/1.1", b"").await.unwrap();
            let next = conn
                .answer()
                .await
                .unwrap_or_else(|e| panic!("after {head} (round {round}): {e}"));
            assert_eq!(next.status, 200);
        }
    }

    // A body larger than is worth reading: the answer says so, and the close is clean.
    let big = vec![b'x'; 200 * 1024];
    let mut conn = Raw::connect(app.addr).await;
    conn.send(&json_post("/api/v1/links", &key), &big)
        .await
        .unwrap();
    let answer = conn.answer().await.unwrap();
    assert_eq!((answer.status, answer.close), (413, true));
    conn.closes_cleanly().await.unwrap();

    // A client waiting for `100 Continue` gets the final answer instead, and no wait for a
    // body it will not send.
    let mut conn = Raw::connect(app.addr).await;
    let head = format!(
        "{}\r\nExpect: 100-continue\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        json_post("/api/v1/links", "snip_bad"),
        link.len()
    );
    conn.stream.write_all(head.as_bytes()).await.unwrap();
    let answer = conn.answer().await.unwrap();
    assert_eq!((answer.status, answer.close), (401, true));
    conn.closes_cleanly().await.unwrap();
    assert_eq!(app.link_count(&key).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_sends_its_keep_alive_clients_elsewhere_without_a_reset() {
    let app = spawn_app_with(|c| {
        c.shutdown_drain_secs = 1;
        c.shutdown_grace_secs = 2;
    })
    .await;
    let addr = app.addr;
    // Eight busy clients, each on one keep-alive connection, and one idle one.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(tokio::spawn(async move {
            let mut conn = Raw::connect(addr).await;
            let mut answered = 0;
            loop {
                conn.send("GET /healthz HTTP/1.1", b"").await?;
                let answer = conn.answer().await?;
                answered += 1;
                if answer.close {
                    // Told to go elsewhere: the connection then closes cleanly.
                    conn.closes_cleanly().await?;
                    return Ok::<_, io::Error>(answered);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let mut idle = Raw::connect(addr).await;
    idle.send("GET /healthz HTTP/1.1", b"").await.unwrap();
    assert_eq!(idle.answer().await.unwrap().status, 200);

    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    for client in clients {
        let answered = client.await.unwrap().expect("a client saw an error");
        assert!(answered > 1);
    }
    // The idle connection is closed between requests, cleanly.
    idle.closes_cleanly().await.unwrap();
}
