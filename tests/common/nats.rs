//! NATS JetStream for tests: the shared server on 127.0.0.1:4222 (a test without it is
//! skipped with a loud message on a laptop, and fails in CI), names unique to each test, and
//! private `nats-server` processes for tests that stop NATS on purpose.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

/// Stream, subject and consumer names of one test; the stream is deleted by [`Names::clean`].
pub struct Names {
    pub stream: String,
    pub subject: String,
    pub durable: String,
}

impl Names {
    pub fn unique() -> Self {
        let n: u64 = rand::random();
        Names {
            stream: format!("SNIP_TEST_{n:016x}"),
            subject: format!("snip.test.{n:016x}"),
            durable: format!("workers-{n:016x}"),
        }
    }

    /// Applies the names to a configuration.
    pub fn configure(&self, url: &str, c: &mut snip::Config) {
        c.nats_url = Some(url.to_owned());
        c.nats_stream = self.stream.clone();
        c.nats_subject = self.subject.clone();
        c.nats_durable = self.durable.clone();
    }

    /// Deletes the test's stream (best effort).
    pub async fn clean(&self, url: &str) {
        if let Ok(client) = async_nats::connect(url).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&self.stream)
                .await;
        }
    }
}

/// The shared NATS URL, or `None` (loudly) when it is not running and this is not CI.
pub fn shared() -> Option<String> {
    if TcpStream::connect_timeout(&"127.0.0.1:4222".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        return Some("nats://127.0.0.1:4222".to_owned());
    }
    if std::env::var_os("CI").is_some() {
        panic!("NATS is not running on 127.0.0.1:4222, and CI must run the NATS tests");
    }
    eprintln!("\n!!! SKIPPED: NATS is not running on 127.0.0.1:4222 !!!\n");
    None
}

/// A `nats-server -js` of the test's own, with its own port and store directory.
pub struct PrivateNats {
    server: super::child::ChildServer,
    _store: TempDir,
}

impl PrivateNats {
    /// Starts one; `None` (loudly, or a failure in CI) without `nats-server`.
    pub fn start() -> Option<Self> {
        let store = tempfile::tempdir().unwrap();
        let dir = store.path().to_owned();
        let bin = ["/usr/sbin/nats-server", "nats-server"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .unwrap_or("nats-server");
        let server = super::child::ChildServer::start("nats-server", move |port| {
            let mut c = Command::new(bin);
            c.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&dir);
            c
        })?;
        Some(PrivateNats {
            server,
            _store: store,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.server.port)
    }

    /// Starts it (again) on the same port and store.
    pub fn resume(&mut self) -> Result<(), String> {
        self.server.resume()
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        self.server.kill();
    }
}
