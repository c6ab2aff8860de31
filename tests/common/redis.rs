//! Redis for tests: the shared server on 127.0.0.1:6379 (a test without it is skipped with a
//! loud message on a laptop, and fails in CI), key prefixes unique to each test, and private
//! `redis-server` processes on their own ports for tests that stop Redis on purpose.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis every machine of this project runs.
pub const SHARED_URL: &str = "redis://127.0.0.1:6379";

/// The shared Redis URL, or `None` (after saying so loudly) when it is not running and this
/// is not CI. In CI (`CI` set) a missing Redis fails the test.
pub fn shared() -> Option<String> {
    if TcpStream::connect_timeout(&"127.0.0.1:6379".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        return Some(SHARED_URL.to_owned());
    }
    if std::env::var_os("CI").is_some() {
        panic!("Redis is not running on 127.0.0.1:6379, and CI must run the Redis tests");
    }
    eprintln!(
        "\n!!! SKIPPED: Redis is not running on 127.0.0.1:6379; start it to run this test !!!\n"
    );
    None
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let n: u64 = rand::random();
    format!("snip-test:{test}:{n:x}")
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own, on its own port, that can be stopped and started.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one on a free port. `None` (loudly, or a failure in CI) without `redis-server`.
    pub fn start() -> Option<Self> {
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        if let Err(e) = r.resume() {
            if std::env::var_os("CI").is_some() {
                panic!("cannot start redis-server: {e}");
            }
            eprintln!("\n!!! SKIPPED: cannot start redis-server ({e}) !!!\n");
            return None;
        }
        Some(r)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]).
    pub fn resume(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
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
        Err("redis-server did not start listening".into())
    }

    /// Kills it (SIGKILL): connections drop, the port closes.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
