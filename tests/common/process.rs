//! The real `snip` binary as a child process: for tests of what only a whole process shows
//! (SIGKILL, SIGTERM, two nodes sharing Redis).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `snip serve`. Killed on drop.
pub struct Snip {
    child: Option<Child>,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
}

impl Snip {
    /// Starts `snip serve` on a free port with `key` as the bootstrap admin key, the store
    /// `db`, and `config` (TOML) written to a file in `dir`. Waits until it listens.
    pub fn start(dir: &Path, db: &str, key: &str, config: &str, extra: &[&str]) -> Snip {
        let n: u32 = rand::random();
        let config_path = dir.join(format!("snip-{n:x}.toml"));
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_snip"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", db])
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .env("SNIP_BOOTSTRAP_ADMIN_KEY", key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn snip");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // Logs are JSON lines when stdout is not a terminal; this one names the port.
        let addr = loop {
            let line = lines
                .next()
                .expect("snip exited before listening")
                .expect("read log line");
            if line.contains("\"listening\"") {
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
                break v["addr"].as_str().expect("addr field").to_owned();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Snip {
            child: Some(child),
            addr,
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills it with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for it to exit on its own.
    pub fn wait(mut self) -> ExitStatus {
        self.child.take().expect("running").wait().expect("wait")
    }
}

impl Drop for Snip {
    fn drop(&mut self) {
        self.kill();
    }
}
