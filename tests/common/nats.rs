//! NATS JetStream for tests: the shared server on 127.0.0.1:4222 (a test without it is
//! skipped with a loud message on a laptop, and fails in CI), names unique to each test, and
//! private `nats-server` processes for tests that stop NATS on purpose.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts one; `None` (loudly, or a failure in CI) without `nats-server`.
    pub fn start() -> Option<Self> {
        let mut n = PrivateNats {
            port: super::redis::free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        if let Err(e) = n.resume() {
            if std::env::var_os("CI").is_some() {
                panic!("cannot start nats-server: {e}");
            }
            eprintln!("\n!!! SKIPPED: cannot start nats-server ({e}) !!!\n");
            return None;
        }
        Some(n)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and store.
    pub fn resume(&mut self) -> Result<(), String> {
        let bin = ["/usr/sbin/nats-server", "nats-server"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .ok_or("nats-server not found")?;
        let child = Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("nats-server did not start listening".into())
    }

    /// Kills it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}
