//! The real `snip` binary as a child process: for tests of what only a whole process shows
//! (SIGKILL, SIGTERM, two nodes sharing Redis).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// A running `snip serve`. Killed on drop.
pub struct Snip {
    child: Option<Child>,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    log: Arc<Mutex<String>>,
}

impl Snip {
    /// A `snip serve` command on a free port over the store `db`, with `config` (TOML)
    /// written to a file in `dir`. Add flags and environment, then [`Snip::spawn`] it.
    pub fn command(dir: &Path, db: &str, config: &str) -> Command {
        let n: u32 = rand::random();
        let config_path = dir.join(format!("snip-{n:x}.toml"));
        // Statistics a fifth of a second behind, so tests need not wait for them; click
        // events that wait for NATS on disk in `dir`.
        let spill = dir.join("spill");
        let config = format!(
            "click_flush_ms = 200\nclick_spill_dir = {:?}\n{config}",
            spill.display().to_string()
        );
        std::fs::write(&config_path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_snip"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", db])
            .arg("--config")
            .arg(&config_path)
            .env_remove("SNIP_BOOTSTRAP_ADMIN_KEY")
            .env_remove("SNIP_BASE_URL")
            .env_remove("SNIP_REDIS_URL")
            .env("RUST_LOG", "info")
            .stderr(Stdio::null());
        cmd
    }

    /// Starts `snip serve` with `key` as the bootstrap admin key and `extra` flags.
    pub fn start(dir: &Path, db: &str, key: &str, config: &str, extra: &[&str]) -> Snip {
        let mut cmd = Self::command(dir, db, config);
        cmd.env("SNIP_BOOTSTRAP_ADMIN_KEY", key).args(extra);
        Self::spawn(cmd)
    }

    /// Starts `snip serve` on a SQLite file in `dir`, with `key` as the bootstrap admin key.
    pub fn on_sqlite(dir: &Path, key: &str, config: &str) -> Snip {
        let db = format!("sqlite://{}/snip.db", dir.display());
        Self::start(dir, &db, key, config, &[])
    }

    /// Spawns `cmd` and waits until it listens.
    pub fn spawn(mut cmd: Command) -> Snip {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn snip");
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
        // Keep draining the log (kept for tests that read it) so the child never blocks
        // on a full pipe.
        let log: Arc<Mutex<String>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Snip {
            child: Some(child),
            addr,
            log,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A line of `/proc/PID/status` in bytes (`VmRSS`: resident now, `VmHWM`: the most
    /// it has been resident), on Linux.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        kib * 1024
    }

    /// What it has logged since it listened.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The child's standard error, when the command piped it.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.as_mut()?.stderr.take()
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` with `key`, answered with JSON.
    pub async fn get_json(&self, client: &reqwest::Client, path: &str, key: &str) -> Value {
        let res = client.get(self.url(path)).bearer_auth(key).send().await;
        res.unwrap().json().await.unwrap()
    }

    /// `POST path` of `body` with `key`, answered with JSON.
    pub async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Value {
        let res = client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await;
        res.unwrap().json().await.unwrap()
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
