//! A real browser for the dashboard tests: Debian's headless Chromium, driven over WebDriver
//! (`chromedriver`, started on a free port) with fantoccini. Without Chromium the tests
//! skip loudly on a laptop and fail in CI.
//!
//! Chromium maps the host `target.test` to 127.0.0.1, so a short link can point to a page
//! of the test's own (snip refuses loopback targets) and the browser can follow it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::child::ChildServer;

/// The host name Chromium resolves to 127.0.0.1.
pub const TARGET_HOST: &str = "target.test";

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; the driver stops when it is dropped (call [`Browser::close`] first
/// to end the session cleanly).
pub struct Browser {
    pub client: Client,
    _driver: ChildServer,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium 1280 px wide; `None` (loudly) when they
    /// are not installed and this is not CI.
    pub async fn start() -> Option<Browser> {
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(path).exists() {
                if std::env::var_os("CI").is_some() {
                    panic!("{path} is missing, and CI must run the browser tests");
                }
                eprintln!(
                    "\n!!! SKIPPED: {path} is missing (apt-get install chromium chromium-driver) !!!\n"
                );
                return None;
            }
        }
        let driver = ChildServer::start("chromedriver", |port| {
            let mut c = Command::new(CHROMEDRIVER);
            c.arg(format!("--port={port}"));
            c
        })?;
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-proxy-server",
                    "--window-size=1280,900",
                    format!("--host-resolver-rules=MAP {TARGET_HOST} 127.0.0.1"),
                ]
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("start a Chromium session");
        Some(Browser {
            client,
            _driver: driver,
        })
    }

    /// Opens `url` and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .to_string()
    }

    /// The text of the page's body (empty while a page is loading).
    pub async fn text(&self) -> String {
        // A script, not an element: a page that replaces itself meanwhile (a form posted)
        // cannot leave a stale element behind.
        for _ in 0..50 {
            match self
                .client
                .execute(
                    "return document.body ? document.body.innerText : ''",
                    vec![],
                )
                .await
            {
                Ok(v) => return v.as_str().unwrap_or_default().to_owned(),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the page's text could not be read");
    }

    /// The text of the element `css`.
    pub async fn text_of(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("element text")
    }

    /// Types `value` into the input `css` (after clearing it).
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Clicks the element `css` (a submit button or a link) and waits until the browser
    /// is on another URL.
    pub async fn submit(&self, css: &str) {
        let before = self.url().await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.url().await == before {
            if Instant::now() > deadline {
                panic!("clicking {css} never left {before}:\n{}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while self
            .client
            .execute("return document.readyState", vec![])
            .await
            .ok()
            .is_none_or(|v| v != "complete")
        {
            assert!(
                Instant::now() < deadline,
                "the page after {css} never loaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        self.client
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Runs `script` (the body of a function) and returns what it returns.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run script")
    }

    /// Runs `script`, whose last argument is the callback to call with the result.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, vec![])
            .await
            .expect("run async script")
    }

    /// Fetches `path` from the page's origin with the page's cookies; returns the status
    /// and the body's bytes.
    pub async fn fetch_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             fetch({path:?}, {{redirect: 'manual'}}).then(async r => {{
               const b = new Uint8Array(await r.arrayBuffer());
               done([r.status, Array.from(b)]);
             }}).catch(e => done([0, []]));"
        );
        let v = self.js_async(&script).await;
        let status = v[0].as_u64().expect("a status") as u16;
        let bytes = v[1]
            .as_array()
            .expect("bytes")
            .iter()
            .map(|b| b.as_u64().expect("a byte") as u8)
            .collect();
        (status, bytes)
    }

    /// Waits until the page's text contains `needle`, reloading `url` between looks.
    pub async fn wait_for_text(&self, url: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.goto(url).await;
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on {url}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the current page's text contains `needle` (without reloading).
    pub async fn wait_for_text_here(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the current page's text no longer contains `needle`.
    pub async fn wait_until_gone(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.text().await.contains(needle) {
            assert!(Instant::now() < deadline, "{needle:?} never went away");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets the window size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
    }

    /// Writes a screenshot of the page to `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Screenshots of the page at 1280 and 390 px, light and dark:
    /// `{name}-{width}-{theme}.png`.
    pub async fn screenshots(&self, name: &str) {
        for (w, h) in [(1280, 900), (390, 844)] {
            for theme in ["light", "dark"] {
                self.js(&format!(
                    "document.documentElement.setAttribute('data-theme', '{theme}');"
                ))
                .await;
                self.resize(w, h).await;
                self.screenshot(&format!("{name}-{w}-{theme}")).await;
            }
        }
        self.js("document.documentElement.removeAttribute('data-theme');")
            .await;
        self.resize(1280, 900).await;
    }

    /// Runs axe-core on the page, light and dark; panics listing every serious or critical
    /// violation.
    pub async fn assert_accessible(&self, screen: &str) {
        let axe = axe_source();
        for theme in ["light", "dark"] {
            self.js(&format!(
                "document.documentElement.setAttribute('data-theme', '{theme}');"
            ))
            .await;
            self.js(&axe).await;
            let found = self
                .js_async(
                    "const done = arguments[arguments.length - 1];
                     axe.run(document).then(r => done(r.violations
                       .filter(v => v.impact === 'serious' || v.impact === 'critical')
                       .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
                            v.nodes.map(n => n.target.join(' ')).join(', '))))
                       .catch(e => done(['axe failed: ' + e]));",
                )
                .await;
            let found: Vec<String> = serde_json::from_value(found).expect("a list");
            assert!(
                found.is_empty(),
                "{screen} ({theme}) has accessibility violations:\n{}",
                found.join("\n")
            );
        }
        self.js("document.documentElement.removeAttribute('data-theme');")
            .await;
    }

    /// Ends the browser session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Cargo's target directory (where screenshots and axe-core go).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// axe-core's script, installed from the npm registry into `target/axe` on first use.
fn axe_source() -> String {
    let dir = target_dir().join("axe");
    let file = dir.join("node_modules/axe-core/axe.min.js");
    if !file.exists() {
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&dir)
            .arg("axe-core@4")
            .status()
            .expect("run npm (Node.js is needed for the accessibility checks)");
        assert!(status.success(), "npm install axe-core failed");
    }
    std::fs::read_to_string(&file).expect("read axe.min.js")
}
