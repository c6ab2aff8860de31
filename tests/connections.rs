//! Keep-alive connections end only cleanly. An answer given before the request body is
//! read (401, 403, 404, 405, 413, 415, 429, the redirect path) leaves the connection usable,
//! or says `Connection: close` and closes it cleanly; a draining node tells each client to
//! go elsewhere. The client here writes the head and the body in two writes, as browsers
//! and many HTTP libraries do, and no client may see a reset.

mod common;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use common::spawn_app_with;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 connection.
struct Raw {
    stream: TcpStream,
    read: Vec<u8>,
}

/// What came back for one request.
#[derive(Debug)]
struct Answer {
    status: u16,
    close: bool,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            read: Vec::new(),
        }
    }

    /// Writes `head` (without its blank line), then `body` a few milliseconds later.
    async fn send(&mut self, head: &str, body: &[u8]) -> io::Result<()> {
        let head = format!(
            "{head}\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        if !body.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.stream.write_all(body).await?;
        }
        Ok(())
    }

    /// Reads one whole answer.
    async fn answer(&mut self) -> io::Result<Answer> {
        let end = loop {
            if let Some(i) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.read[..end]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        let length: usize = header("content-length:").map_or(0, |v| v.parse().unwrap());
        let close = header("connection:").is_some_and(|v| v == "close");
        while self.read.len() < end + length {
            self.fill().await?;
        }
        self.read.drain(..end + length);
        Ok(Answer { status, close })
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        self.read.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// The server closes the connection cleanly (FIN, not a reset) within a few seconds.
    async fn closes_cleanly(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "still open")),
            }
        }
    }
}

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
