//! Redis for tests: the shared server on 127.0.0.1:6379 (a test without it is skipped with a
//! loud message on a laptop, and fails in CI), key prefixes unique to each test, and private
//! `redis-server` processes on their own ports for tests that stop Redis on purpose.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

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
pub struct PrivateRedis(super::child::ChildServer);

impl PrivateRedis {
    /// Starts one on a free port. `None` (loudly, or a failure in CI) without `redis-server`.
    pub fn start() -> Option<Self> {
        super::child::ChildServer::start("redis-server", |port| {
            let mut c = Command::new("redis-server");
            c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"]);
            c
        })
        .map(PrivateRedis)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// Starts it again on the same port (after [`Self::kill`]).
    pub fn resume(&mut self) -> Result<(), String> {
        self.0.resume()
    }

    /// Kills it (SIGKILL): connections drop, the port closes.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}
