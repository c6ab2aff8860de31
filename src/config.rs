//! Configuration: embedded defaults < `snip.toml` < `SNIP_*` environment < command-line flags.
//! Read once at start-up; nothing reads the environment after that.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::domain::key::ApiKey;
use crate::net::IpRange;
use crate::ratelimit::RateLimits;

/// Everything snip needs to start. `Default` is the embedded, single-node setup.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Store URL: `sqlite://path` (the default, a file beside the process).
    pub database_url: String,
    /// Public base of short URLs, e.g. `https://sn.ip`; `http://{listen}` when unset.
    pub base_url: Option<String>,
    /// Longest accepted destination URL.
    pub max_url_length: usize,
    /// Destination hosts refused, with their subdomains.
    pub blocked_hosts: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Other names of this service (besides the base URL's host, `localhost` and loopback
    /// addresses), refused as link destinations so links cannot loop.
    pub own_hosts: Vec<String>,
    /// Most live API keys one user may hold.
    pub max_keys_per_user: u32,
    /// Connection limits of the HTTP listener.
    pub connections: ConnectionConfig,
    /// Password checks of protected links run at most this many at a time (default: the
    /// number of CPUs). Each holds about 19 MiB while it runs.
    pub password_checks: Option<usize>,
    /// Password checks that may wait for a turn; more are answered 503 at once.
    pub password_check_queue: usize,
    /// When the store has no user: the key the first admin gets (instead of a random one).
    pub bootstrap_admin_key: Option<String>,
    /// The server's secret for YOURLS time-limited signatures (at least 32 characters).
    /// Without it those signatures are refused; keys work as `signature` either way.
    pub yourls_signature_secret: Option<String>,
    /// How long in-flight requests may take to finish at shutdown, in seconds.
    pub shutdown_grace_secs: u64,
    /// How long, at shutdown, the node keeps serving while `/readyz` answers 503, so that
    /// load balancers stop sending it traffic before it stops accepting, in seconds.
    pub shutdown_drain_secs: u64,
    /// Redis for the shared cache and rate limits, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel snip uses.
    pub redis_prefix: String,
    /// Timeout of one Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// The redirect cache.
    pub cache: CacheConfig,
    /// Rate-limit policies.
    pub rate_limits: RateLimits,
    /// What this node does.
    pub role: NodeRole,
    /// Whether redirects produce click events (on by default; off for benchmarks).
    pub analytics: bool,
    /// Whether `GET /{code}` of a link held in L1 is answered before the router (the hot
    /// path; on by default; off only to measure what it saves).
    pub hot_path: bool,
    /// How often added-up clicks are written, in milliseconds: the delay of the statistics.
    pub click_flush_ms: u64,
    /// Longest wait for one store call, in milliseconds.
    pub store_timeout_ms: u64,
    /// Longest time one HTTP request may take, in seconds (then 503).
    pub request_timeout_secs: u64,
    /// An OTLP/HTTP collector that receives traces, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    /// A MaxMind-format country database (`.mmdb`) for click countries.
    pub geoip: Option<std::path::PathBuf>,
    /// NATS with JetStream for click events between nodes, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: Option<String>,
    /// JetStream stream of click events (created when missing).
    pub nats_stream: String,
    /// Subject click events are published on.
    pub nats_subject: String,
    /// Durable consumer the workers of every node share.
    pub nats_durable: String,
    /// Click events the in-memory queue holds (then, without NATS, more are dropped).
    pub click_queue_capacity: usize,
    /// Where click events wait on disk while NATS is away (created when missing).
    pub click_spill_dir: std::path::PathBuf,
    /// Most bytes the spill may hold (1 GiB: about two million events); more are dropped.
    pub click_spill_max_bytes: u64,
    /// PostgreSQL shards for links (the first also holds users and keys). When set,
    /// `database_url` is not used.
    pub shards: Vec<ShardConfig>,
    /// The web dashboard under `/app`.
    pub dashboard: DashboardConfig,
    /// Bounds on GraphQL requests.
    pub graphql: GraphqlLimits,
}

/// Bounds on what one GraphQL request may ask (`[graphql]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlLimits {
    /// Deepest nesting of fields.
    pub max_depth: usize,
    /// Most complexity points (one per field; a list field weighs its page size times its
    /// items).
    pub max_complexity: usize,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_complexity: 1_000,
            max_query_bytes: 16 * 1024,
        }
    }
}

/// The web dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// What `GET /` shows: `"page"` (a short landing page linking to the dashboard),
    /// `"none"` (404), or an absolute http(s) URL to redirect to.
    pub landing: String,
    /// A session unused for this many minutes ends (a day by default).
    pub session_idle_minutes: u64,
    /// A session ends this many hours after sign-in, used or not (30 days by default).
    pub session_max_hours: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            landing: "page".into(),
            session_idle_minutes: 24 * 60,
            session_max_hours: 30 * 24,
        }
    }
}

/// What `GET /` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// The landing page.
    Page,
    /// 404.
    None,
    /// A redirect (302) to this URL.
    Redirect(String),
}

/// One shard.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    /// `postgres://…`.
    pub url: String,
    /// Its name on the ring; the URL without its password when unset. Keep it stable:
    /// renaming a shard moves its links.
    pub name: Option<String>,
    /// Virtual nodes on the ring (its weight); 200 when unset.
    pub vnodes: Option<u32>,
}

impl ShardConfig {
    /// A shard given only by URL (`--shard`).
    pub fn from_url(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: None,
            vnodes: None,
        }
    }

    /// Its ring name.
    pub fn ring_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| redact_url(&self.url))
    }
}

impl std::fmt::Debug for ShardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardConfig")
            .field("url", &redact_url(&self.url))
            .field("name", &self.name)
            .field("vnodes", &self.vnodes)
            .finish()
    }
}

/// What a node does. Every role answers `/healthz`, `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Everything (the default).
    #[default]
    All,
    /// The REST API and its docs.
    Api,
    /// Redirects.
    Redirect,
    /// Applies click events from NATS (needs `nats_url`).
    Worker,
}

impl NodeRole {
    /// Whether the node serves `/api/v1` and the docs.
    pub fn serves_api(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Api)
    }

    /// Whether the node serves redirects.
    pub fn serves_redirects(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Redirect)
    }

    /// Whether the node consumes click events from NATS.
    pub fn consumes_clicks(self) -> bool {
        matches!(self, NodeRole::All | NodeRole::Worker)
    }
}

/// Limits on client connections, so slow or idle clients cannot hold the server's sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Seconds a client has to send a whole request head; then the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open between requests.
    pub idle_timeout_secs: u64,
    /// Most open client connections; more wait in the listen backlog. Default: three
    /// quarters of the process's file-descriptor limit.
    pub max: Option<usize>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max: None,
        }
    }
}

/// Sizes and lifetimes of the redirect cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Most links held in each node's L1.
    pub capacity: u64,
    /// Seconds a link stays cached.
    pub ttl_secs: u64,
    /// Seconds an unknown code stays cached.
    pub negative_ttl_secs: u64,
    /// Seconds past `ttl_secs` a link is kept to answer redirects while the store is down.
    pub stale_if_error_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            ttl_secs: 300,
            negative_ttl_secs: 5,
            stale_if_error_secs: 3600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://snip.db".into(),
            base_url: None,
            max_url_length: 2048,
            blocked_hosts: Vec::new(),
            body_limit: 1024 * 1024,
            own_hosts: Vec::new(),
            max_keys_per_user: 25,
            connections: ConnectionConfig::default(),
            password_checks: None,
            password_check_queue: 8,
            bootstrap_admin_key: None,
            yourls_signature_secret: None,
            shutdown_grace_secs: 10,
            shutdown_drain_secs: 0,
            redis_url: None,
            redis_prefix: "snip".into(),
            redis_timeout_ms: 100,
            cache: CacheConfig::default(),
            rate_limits: RateLimits::default(),
            shards: Vec::new(),
            nats_url: None,
            geoip: None,
            role: NodeRole::All,
            analytics: true,
            hot_path: true,
            click_flush_ms: 10_000,
            store_timeout_ms: 5_000,
            request_timeout_secs: 30,
            otlp_endpoint: None,
            nats_stream: "SNIP_CLICKS".into(),
            nats_subject: "snip.clicks".into(),
            nats_durable: "snip-workers".into(),
            click_queue_capacity: 65_536,
            click_spill_dir: "snip-spill".into(),
            click_spill_max_bytes: 1 << 30,
            dashboard: DashboardConfig::default(),
            graphql: GraphqlLimits::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("base_url", &self.base_url)
            .field("max_url_length", &self.max_url_length)
            .field("blocked_hosts", &self.blocked_hosts)
            .field("body_limit", &self.body_limit)
            .field("own_hosts", &self.own_hosts)
            .field("max_keys_per_user", &self.max_keys_per_user)
            .field("connections", &self.connections)
            .field("password_checks", &self.password_checks)
            .field("password_check_queue", &self.password_check_queue)
            .field(
                "bootstrap_admin_key",
                &self.bootstrap_admin_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "yourls_signature_secret",
                &self.yourls_signature_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("shutdown_drain_secs", &self.shutdown_drain_secs)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("cache", &self.cache)
            .field("rate_limits", &self.rate_limits)
            .field("shards", &self.shards)
            .field("dashboard", &self.dashboard)
            .field("graphql", &self.graphql)
            .field("nats_url", &self.nats_url.as_deref().map(redact_url))
            .field("geoip", &self.geoip)
            .field("role", &self.role)
            .field("analytics", &self.analytics)
            .field("hot_path", &self.hot_path)
            .field("click_flush_ms", &self.click_flush_ms)
            .field("store_timeout_ms", &self.store_timeout_ms)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("nats_stream", &self.nats_stream)
            .field("nats_subject", &self.nats_subject)
            .field("click_queue_capacity", &self.click_queue_capacity)
            .field("click_spill_dir", &self.click_spill_dir)
            .field("click_spill_max_bytes", &self.click_spill_max_bytes)
            .finish()
    }
}

/// Hides the password of a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // Setting a password fails only for URLs that cannot have one, and this one has.
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Values given on the command line or in the environment; each one set wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `SNIP_LISTEN`.
    pub listen: Option<String>,
    /// `--database` / `SNIP_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--base-url` / `SNIP_BASE_URL`.
    pub base_url: Option<String>,
    /// `SNIP_BOOTSTRAP_ADMIN_KEY`.
    pub bootstrap_admin_key: Option<String>,
    /// `SNIP_YOURLS_SIGNATURE_SECRET`.
    pub yourls_signature_secret: Option<String>,
    /// `--redis` / `SNIP_REDIS_URL`.
    pub redis_url: Option<String>,
    /// `--shard` (repeated); replaces the file's shards when given.
    pub shards: Vec<String>,
    /// `--nats` / `SNIP_NATS_URL`.
    pub nats_url: Option<String>,
    /// `--geoip` / `SNIP_GEOIP`.
    pub geoip: Option<std::path::PathBuf>,
    /// `--role` / `SNIP_ROLE`.
    pub role: Option<NodeRole>,
    /// `--otlp-endpoint` / `SNIP_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// Reads `file` (if given) over the defaults, then applies `overrides`.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Config::default(),
        };
        let Overrides {
            listen,
            database_url,
            base_url,
            bootstrap_admin_key,
            yourls_signature_secret,
            redis_url,
            shards,
            nats_url,
            geoip,
            role,
            otlp_endpoint,
        } = overrides;
        config.listen = listen.unwrap_or(config.listen);
        config.database_url = database_url.unwrap_or(config.database_url);
        config.base_url = base_url.or(config.base_url);
        config.bootstrap_admin_key = bootstrap_admin_key.or(config.bootstrap_admin_key);
        config.yourls_signature_secret = yourls_signature_secret.or(config.yourls_signature_secret);
        config.redis_url = redis_url.or(config.redis_url);
        config.nats_url = nats_url.or(config.nats_url);
        config.geoip = geoip.or(config.geoip);
        config.role = role.unwrap_or(config.role);
        config.otlp_endpoint = otlp_endpoint.or(config.otlp_endpoint);
        if !shards.is_empty() {
            config.shards = shards.iter().map(|u| ShardConfig::from_url(u)).collect();
        }
        Ok(config)
    }

    /// Checks the settings that `App::build` relies on. Each error starts with the name of
    /// the setting that is wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.public_base_url()?;
        self.bootstrap_key()?;
        self.signature_secret()?;
        self.trusted_proxies()?;
        self.landing()?;
        if self.role == NodeRole::Worker && self.nats_url.is_none() {
            bail!("nats_url: --role worker applies click events from NATS: give --nats too");
        }
        Ok(())
    }

    /// The public base of short URLs without a trailing slash: `base_url`, or
    /// `http://{listen}` when unset. Fails unless it is an http(s) URL with a host.
    pub fn public_base_url(&self) -> anyhow::Result<(String, url::Url)> {
        let text = match &self.base_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.listen),
        };
        let url = url::Url::parse(&text).context("base_url: must be an absolute URL")?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!("base_url: must be an http(s) URL with a host");
        }
        Ok((text.trim_end_matches('/').to_owned(), url))
    }

    /// What `GET /` answers (`dashboard.landing`).
    pub fn landing(&self) -> anyhow::Result<Landing> {
        match self.dashboard.landing.as_str() {
            "page" => Ok(Landing::Page),
            "none" => Ok(Landing::None),
            url => match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    Ok(Landing::Redirect(u.to_string()))
                }
                _ => bail!(
                    "dashboard.landing: must be \"page\", \"none\" or an absolute http(s) URL"
                ),
            },
        }
    }

    /// The YOURLS signature secret, when one is set; fails when it is too short to keep
    /// tokens from being guessed.
    pub fn signature_secret(&self) -> anyhow::Result<Option<String>> {
        match &self.yourls_signature_secret {
            Some(s) if s.chars().count() < 32 => {
                anyhow::bail!("yourls_signature_secret: must be at least 32 characters")
            }
            other => Ok(other.clone()),
        }
    }

    /// The key the first admin gets, when one is set.
    pub fn bootstrap_key(&self) -> anyhow::Result<Option<ApiKey>> {
        self.bootstrap_admin_key
            .as_deref()
            .map(|k| {
                ApiKey::parse(k)
                    .context("bootstrap_admin_key: must be snip_ followed by 32 letters or digits")
            })
            .transpose()
    }

    /// The proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<IpRange>> {
        self.rate_limits
            .trusted_proxies
            .iter()
            .map(|p| IpRange::parse(p).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()
            .context("rate_limits.trusted_proxies")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snip.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:1\"\nbase_url = \"https://sn.ip\"\nmax_url_length = 100\n\
             [rate_limits.writes]\ncapacity = 5.0\nrefill_per_sec = 0.5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            Overrides {
                listen: Some("127.0.0.1:2".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.base_url.as_deref(), Some("https://sn.ip"));
        assert_eq!(c.max_url_length, 100);
        assert_eq!(c.database_url, "sqlite://snip.db");
        assert_eq!(c.rate_limits.writes.capacity, 5.0);
        assert_eq!(c.rate_limits.reads.capacity, 200.0);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snip.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path), Overrides::default()).is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Config {
            database_url: "postgres://u:hunter2@db/snip".into(),
            bootstrap_admin_key: Some("snip_secret".into()),
            ..Config::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("snip_secret"), "{s}");
    }

    /// The default configuration, changed by `f`.
    fn config_with(f: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config::default();
        f(&mut c);
        c
    }

    /// The error of `validate`, as one line with its causes.
    fn refusal(c: &Config) -> String {
        format!("{:#}", c.validate().unwrap_err())
    }

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn base_url_must_be_http_with_a_host() {
        let c = config_with(|c| c.base_url = Some("https://sn.ip/".into()));
        c.validate().unwrap();
        assert_eq!(c.public_base_url().unwrap().0, "https://sn.ip");
        for bad in ["sn.ip", "ftp://sn.ip", "unix:/run/snip"] {
            let c = config_with(|c| c.base_url = Some(bad.into()));
            assert!(
                refusal(&c).starts_with("base_url: "),
                "{bad}: {}",
                refusal(&c)
            );
        }
    }

    #[test]
    fn base_url_defaults_to_the_listen_address() {
        let c = config_with(|c| c.listen = "0.0.0.0:9000".into());
        assert_eq!(c.public_base_url().unwrap().0, "http://0.0.0.0:9000");
        let c = config_with(|c| c.listen = "no port here".into());
        assert!(refusal(&c).starts_with("base_url: "), "{}", refusal(&c));
    }

    #[test]
    fn bootstrap_admin_key_must_be_a_key() {
        let key = format!("snip_{}", "a1".repeat(16));
        let c = config_with(|c| c.bootstrap_admin_key = Some(key.clone()));
        assert_eq!(c.bootstrap_key().unwrap().unwrap().expose(), key);
        let c = config_with(|c| c.bootstrap_admin_key = Some("snip_short".into()));
        assert!(
            refusal(&c).starts_with("bootstrap_admin_key: "),
            "{}",
            refusal(&c)
        );
    }

    #[test]
    fn a_yourls_signature_secret_must_be_long_and_is_never_shown() {
        let short = config_with(|c| c.yourls_signature_secret = Some("too short".into()));
        assert!(refusal(&short).contains("yourls_signature_secret"));
        let long = config_with(|c| c.yourls_signature_secret = Some("s".repeat(32)));
        assert!(long.validate().is_ok());
        assert!(!format!("{long:?}").contains(&"s".repeat(32)));
    }

    #[test]
    fn trusted_proxies_must_be_addresses_or_ranges() {
        let c = config_with(|c| {
            c.rate_limits.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into()]
        });
        assert_eq!(c.trusted_proxies().unwrap().len(), 2);
        for bad in ["localhost", "10.0.0.0/33"] {
            let c = config_with(|c| c.rate_limits.trusted_proxies = vec![bad.into()]);
            assert!(
                refusal(&c).starts_with("rate_limits.trusted_proxies: "),
                "{bad}: {}",
                refusal(&c)
            );
        }
    }

    #[test]
    fn a_worker_needs_nats() {
        let c = config_with(|c| {
            c.role = NodeRole::Worker;
            c.nats_url = Some("nats://127.0.0.1:4222".into());
        });
        c.validate().unwrap();
        let c = config_with(|c| c.role = NodeRole::Worker);
        assert!(refusal(&c).starts_with("nats_url: "), "{}", refusal(&c));
    }
}
