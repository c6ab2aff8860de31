//! Shared harness for the integration tests: start the real app on port 0 with its own
//! temporary SQLite file and a manual clock, and speak HTTP to it with reqwest.
//!
//! Every test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use snip::clock::ManualClock;
use snip::{App, Config};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The bootstrap admin key every test app starts with: `snip_` + 32 base62 characters.
pub const ADMIN_KEY: &str = "snip_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A well-formed key that no app ever issues.
pub const UNKNOWN_KEY: &str = "snip_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";

/// The id of the bootstrap admin.
pub const ADMIN_ID: i64 = 1;
/// A desktop browser's user agent: clicks with it count as people's.
pub const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

/// A running app and what a test needs to talk to it. Stops the server on drop.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:{port}`, without a trailing slash; also the app's `base_url`.
    pub base: String,
    /// A client that does not follow redirects and never uses a proxy.
    pub client: reqwest::Client,
    pub admin_key: String,
    /// The first admin's one-time dashboard sign-in link, as `snip serve` prints it (empty
    /// when this app did not create the admin).
    pub sign_in_link: String,
    pub clock: ManualClock,
    pub shutdown: CancellationToken,
    pub dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts an app with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app with the test defaults, then lets `tweak` change the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("create tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let base = format!("http://{addr}");

    let mut config = Config {
        listen: addr.to_string(),
        database_url: format!("sqlite://{}/snip.db", dir.path().display()),
        base_url: Some(base.clone()),
        bootstrap_admin_key: Some(ADMIN_KEY.to_string()),
        // Statistics a fifth of a second behind, so tests need not wait for them.
        click_flush_ms: 200,
        click_spill_dir: dir.path().join("spill"),
        ..Config::default()
    };
    // The manual clock never refills a token bucket, so the default budgets (50 writes
    // per key) would turn the bigger tests into 429s. The limiter stays in the path with
    // budgets no test here reaches; rate limiting itself is tested on its own.
    let limits = &mut config.rate_limits;
    for policy in [
        &mut limits.writes,
        &mut limits.reads,
        &mut limits.anonymous,
        &mut limits.redirects,
        &mut limits.misses,
        &mut limits.passwords,
        &mut limits.link_passwords,
    ] {
        policy.capacity = 1_000_000.0;
    }
    tweak(&mut config);

    // Stored times have millisecond precision; start there so `now` round-trips exactly.
    let clock = ManualClock::new(Utc::now().trunc_subsecs(3));
    let app = App::build(config, Arc::new(clock.clone()))
        .await
        .expect("build app");
    // Empty when the store had its admin already (a second node on a shared store).
    let sign_in_link = app.new_admin_sign_in().unwrap_or_default().to_owned();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = app.serve(listener, token).await {
            eprintln!("server stopped with an error: {e:#}");
        }
    });

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("build client");

    TestApp {
        addr,
        base,
        client,
        admin_key: ADMIN_KEY.to_string(),
        sign_in_link,
        clock,
        shutdown,
        dir,
    }
}

impl TestApp {
    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The clock's current time as the API formats it (RFC 3339, milliseconds, `Z`).
    pub fn now_str(&self) -> String {
        fmt_time(snip::clock::Clock::now(&self.clock))
    }

    /// A request to `path`, with `Authorization: Bearer {key}` when a key is given.
    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let req = self.client.request(method, self.url(path));
        match key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// Sends a request with a JSON body (`Content-Type: application/json`).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(method, path, key)
            .json(body)
            .send()
            .await
            .expect("send request")
    }

    /// `GET path` with a key.
    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.send(Method::GET, path, Some(key)).await
    }

    /// A request without a body.
    pub async fn send(&self, method: Method, path: &str, key: Option<&str>) -> Response {
        self.request(method, path, key)
            .send()
            .await
            .expect("send request")
    }

    /// `GET path` without a key (redirects, health, docs).
    pub async fn get_anon(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, Some(key), body).await
    }

    pub async fn put_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, Some(key), body).await
    }

    /// `PATCH` with `Content-Type: application/merge-patch+json`.
    pub async fn patch_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path, Some(key))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .expect("send request")
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.send(Method::DELETE, path, Some(key)).await
    }

    /// `POST /api/v1/links`.
    pub async fn post_link(&self, key: &str, body: &Value) -> Response {
        self.post_json("/api/v1/links", key, body).await
    }

    /// Creates a link and returns its JSON, asserting `201`.
    pub async fn create_link(&self, key: &str, body: &Value) -> Value {
        let resp = self.post_link(key, body).await;
        expect_json(resp, StatusCode::CREATED).await
    }

    /// Creates a link to `url` and returns its code.
    pub async fn create_link_to(&self, key: &str, url: &str) -> String {
        let link = self.create_link(key, &json!({ "url": url })).await;
        str_field(&link, "code")
    }

    /// `POST /api/v1/links/bulk` with `items`; asserts `200` and returns `results`.
    pub async fn bulk(&self, key: &str, items: Vec<Value>) -> Vec<Value> {
        let resp = self
            .post_json("/api/v1/links/bulk", key, &json!({ "links": items }))
            .await;
        let body = expect_json(resp, StatusCode::OK).await;
        body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("bulk answer without results: {body}"))
            .clone()
    }

    /// Creates a user as the admin (`201`) and returns the user JSON.
    pub async fn create_user_json(&self, body: &Value) -> Value {
        let resp = self.post_json("/api/v1/users", ADMIN_KEY, body).await;
        expect_json(resp, StatusCode::CREATED).await
    }

    /// Creates a member with `email` and a key for them that may manage their links and
    /// their own account (`links:read links:write account:write`); returns `(id, key)`.
    pub async fn create_user(&self, email: &str) -> (i64, String) {
        let user = self
            .create_user_json(&json!({ "email": email, "name": email }))
            .await;
        let id = int_field(&user, "id");
        let scopes = json!({ "scopes": ["links:read", "links:write", "account:write"] });
        let key = self.create_key(id, ADMIN_KEY, &scopes).await;
        (id, str_field(&key, "key"))
    }

    /// `POST /api/v1/users/{user_id}/keys` as `as_key`; asserts `201`, returns the key JSON.
    pub async fn create_key(&self, user_id: i64, as_key: &str, body: &Value) -> Value {
        let resp = self
            .post_json(&format!("/api/v1/users/{user_id}/keys"), as_key, body)
            .await;
        expect_json(resp, StatusCode::CREATED).await
    }

    /// The value of the `/metrics` line of `series` (a metric name with its labels, as
    /// written in the scrape). Panics, showing the scrape, when there is no such line, so a
    /// renamed or removed metric fails the test instead of reading as 0.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.scrape().await;
        metric_in(&text, series)
            .unwrap_or_else(|| panic!("no metric line {series:?} in the scrape:\n{text}"))
    }

    /// Like [`TestApp::metric`], but 0 when the line is absent: only for series that appear
    /// once something was counted (a histogram's series per label set).
    pub async fn metric_or_zero(&self, series: &str) -> u64 {
        metric_in(&self.scrape().await, series).unwrap_or(0)
    }

    /// The text of `GET /metrics`, asserting `200`.
    pub async fn scrape(&self) -> String {
        expect_text(self.get_anon("/metrics").await, StatusCode::OK).await
    }

    /// `GET /{code}` without a key, as a browser would.
    /// `GET /{code}` as a person's browser (a desktop Firefox), so the click counts as a
    /// person's, not a bot's.
    pub async fn visit_as_person(&self, code: &str) -> Response {
        self.client
            .get(self.url(&format!("/{code}")))
            .header("user-agent", BROWSER_UA)
            .send()
            .await
            .expect("send request")
    }

    pub async fn redirect(&self, code: &str) -> Response {
        self.get_anon(&format!("/{code}")).await
    }

    /// Fetches one cursor-mode page of `path` (which already holds `?` and its filters):
    /// its items and the next cursor, `None` on the last page.
    pub async fn cursor_page(
        &self,
        path: &str,
        key: &str,
        cursor: Option<&str>,
    ) -> (Vec<Value>, Option<String>) {
        let page_path = match cursor {
            Some(c) => format!("{path}&cursor={}", encode_query(c)),
            None => path.to_string(),
        };
        let page = expect_json(self.get(&page_path, key).await, StatusCode::OK).await;
        let data = page["data"]
            .as_array()
            .unwrap_or_else(|| panic!("page without data: {page}"))
            .clone();
        match (&page["has_more"], &page["next_cursor"]) {
            (Value::Bool(true), Value::String(next)) => (data, Some(next.clone())),
            (Value::Bool(false), Value::Null) => (data, None),
            _ => panic!("inconsistent has_more / next_cursor: {page}"),
        }
    }

    /// Walks `path` (which already holds `?` and its filters) in cursor mode and returns
    /// every item, in order. Bounded: panics after `max_pages`.
    pub async fn walk_cursor(&self, path: &str, key: &str, max_pages: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..max_pages {
            let (data, next) = self.cursor_page(path, key, cursor.as_deref()).await;
            all.extend(data);
            match next {
                Some(next) => cursor = Some(next),
                None => return all,
            }
        }
        panic!("cursor walk of {path} did not end within {max_pages} pages");
    }
}

/// The value of `series` in a Prometheus scrape, `None` when no line has it. Panics on a
/// line of the series whose value is not a whole number.
pub fn metric_in(scrape: &str, series: &str) -> Option<u64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?;
        // `snip_redis_up` must not match `snip_redis_up_total`.
        if !value.starts_with(' ') {
            return None;
        }
        let value = value.trim();
        Some(
            value
                .parse()
                .unwrap_or_else(|_| panic!("{series}: {value:?} is not a whole number")),
        )
    })
}

/// Formats a time as the API does: RFC 3339 UTC with milliseconds and `Z`.
pub fn fmt_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Percent-encodes a query value (cursors are opaque and may hold any character).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the body as JSON after asserting the status; the panic shows the body.
pub async fn expect_json(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let text = resp.text().await.expect("read body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts the status and returns the body text (for non-JSON answers).
pub async fn expect_text(resp: Response, status: StatusCode) -> String {
    let got = resp.status();
    let text = resp.text().await.expect("read body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    text
}

/// Asserts an empty-bodied status such as `204`.
pub async fn expect_status(resp: Response, status: StatusCode) {
    let got = resp.status();
    let text = resp.text().await.expect("read body");
    assert_eq!(got, status, "unexpected status; body: {text}");
}

/// Asserts an RFC 9457 problem: the status, `application/problem+json`, a body whose
/// `status` matches and which has a `title`. Returns the body.
pub async fn expect_problem(resp: Response, status: StatusCode) -> Value {
    let ctype = header(&resp, "content-type");
    let body_status = resp.status();
    let text = resp.text().await.expect("read body");
    assert_eq!(body_status, status, "unexpected status; body: {text}");
    assert!(
        ctype.starts_with("application/problem+json"),
        "{status}: content-type {ctype:?} is not application/problem+json; body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("problem body is not JSON ({e}): {text}"));
    assert_eq!(
        body["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "problem `status` does not match: {body}"
    );
    assert!(body["title"].is_string(), "problem without title: {body}");
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert!(body["errors"].is_array(), "422 without errors[]: {body}");
    }
    body
}

/// Like [`expect_problem`] but accepts any of `statuses` (where the contract leaves a choice).
pub async fn expect_problem_in(resp: Response, statuses: &[StatusCode]) -> Value {
    let got = resp.status();
    if !statuses.contains(&got) {
        let text = resp.text().await.unwrap_or_default();
        panic!("status {got} not one of {statuses:?}; body: {text}");
    }
    expect_problem(resp, got).await
}

/// Asserts a `422` problem with an `errors[]` entry whose field is `field` or nested
/// under it (`tags.2` is under `tags`).
pub async fn expect_field_error(resp: Response, field: &str) -> Value {
    let body = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        has_field_error(&body, field),
        "no error for field {field:?}: {body}"
    );
    body
}

/// Whether a problem body names `field` (or a field nested under it) in `errors[]`.
pub fn has_field_error(problem: &Value, field: &str) -> bool {
    problem["errors"].as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            e["field"].as_str().is_some_and(|f| {
                f == field
                    || f.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            }) && e["message"].is_string()
        })
    })
}

/// A header's value as a string, or `""` when absent.
pub fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII").to_string())
        .unwrap_or_default()
}

/// A string field; panics with the whole value when missing.
pub fn str_field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {name:?} in {v}"))
        .to_string()
}

/// An integer field; panics with the whole value when missing.
pub fn int_field(v: &Value, name: &str) -> i64 {
    v[name]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer field {name:?} in {v}"))
}

/// An id as a path segment, whether the API gives it as a number or a string.
pub fn id_segment(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not an id: {other}"),
    }
}

/// Scopes as a sorted list, whether given as a JSON array or a space-separated string.
pub fn scopes_of(v: &Value) -> Vec<String> {
    let mut scopes: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|s| s.as_str().expect("scope is a string").to_string())
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => panic!("not a scope list: {other}"),
    };
    scopes.sort();
    scopes
}

/// The items of a list answer, whether a bare array or `{"data": [...]}`.
pub fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Object(o) => o
            .get("data")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("list without data: {v}"))
            .clone(),
        other => panic!("not a list: {other}"),
    }
}

/// The `code`s of a list of links, in order.
pub fn codes(links: &[Value]) -> Vec<String> {
    links.iter().map(|l| str_field(l, "code")).collect()
}

/// Whether `s` is an API key: `snip_` + 32 base62 characters.
pub fn is_api_key(s: &str) -> bool {
    s.strip_prefix("snip_")
        .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether `s` is an RFC 3339 UTC time with exactly millisecond precision.
pub fn is_millis_time(s: &str) -> bool {
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && DateTime::parse_from_rfc3339(s).is_ok()
}

impl TestApp {
    /// How many links `key`'s user has, from the offset-mode `total`.
    pub async fn link_count(&self, key: &str) -> i64 {
        let page = expect_json(
            self.get("/api/v1/links?page=1&limit=100", key).await,
            StatusCode::OK,
        )
        .await;
        int_field(&page, "total")
    }
}
pub mod browser;
pub mod child;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod redis;
pub mod statements;
