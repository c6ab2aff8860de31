//! A server of the test's own (redis-server, nats-server) as a child process on a fixed
//! loopback port: started, killed and started again on the same port by fault tests.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child server listening on `127.0.0.1:port`. Killed on drop.
pub struct ChildServer {
    /// Its port.
    pub port: u16,
    command: Box<dyn Fn(u16) -> Command + Send>,
    child: Option<Child>,
}

impl ChildServer {
    /// Starts `command(port)` on a free port; `None` (loudly, or a failure in CI) when it
    /// cannot start.
    pub fn start(name: &str, command: impl Fn(u16) -> Command + Send + 'static) -> Option<Self> {
        let mut s = ChildServer {
            port: super::redis::free_port(),
            command: Box::new(command),
            child: None,
        };
        if let Err(e) = s.resume() {
            if std::env::var_os("CI").is_some() {
                panic!("cannot start {name}: {e}");
            }
            eprintln!("\n!!! SKIPPED: cannot start {name} ({e}) !!!\n");
            return None;
        }
        Some(s)
    }

    /// Starts it again on the same port (after [`Self::kill`]) and waits until it listens.
    pub fn resume(&mut self) -> Result<(), String> {
        let child = (self.command)(self.port)
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
        Err("the server did not start listening".into())
    }

    /// Kills it (SIGKILL): connections drop, the port closes.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}
