//! Wiring: builds the store, the click pipeline and the state from a [`Config`], then serves
//! until told to stop. The binary and the integration tests both start snip through here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::users::{Bootstrap, bootstrap};
use crate::app::{AppState, Settings};
use crate::cache::{CacheSettings, RedirectCache, RedisCache};
use crate::clicks::{self, QueueSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::key::ApiKey;
use crate::domain::target_url::{UrlPolicy, normalise_host};
use crate::net::IpRange;
use crate::ratelimit::local::LocalLimiter;
use crate::ratelimit::redis::RedisLimiter;
use crate::ratelimit::{Backend, Limiter};
use crate::redis_conn::RedisConn;
use crate::store::guarded::{Guard, Guarded};
use crate::store::{AnyStore, LinkStore, UserStore};

/// A built snip, ready to serve.
pub struct App {
    state: AppState,
    store: AnyStore,
    config: Config,
    workers: CancellationToken,
    click_worker: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
    new_admin_key: Option<ApiKey>,
}

/// `snip shards rebalance`: moves every link to the shard the ring now names.
pub async fn rebalance(config: &Config) -> anyhow::Result<u64> {
    match AnyStore::from_config(config).await? {
        AnyStore::Sharded(s) => {
            let moved = s.rebalance().await?;
            for shard in s.shards() {
                shard.store.close().await;
            }
            Ok(moved)
        }
        _ => bail!("no shards are configured (--shard URL, or [[shards]] in the config)"),
    }
}

impl App {
    /// Opens the store (applying migrations), starts the click worker and creates the first
    /// admin if the store has no user.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let base = url::Url::parse(&base_url).context("base_url must be an absolute URL")?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            bail!("base_url must be an http(s) URL with a host");
        }
        let bootstrap_key =
            match &config.bootstrap_admin_key {
                Some(k) => Some(ApiKey::parse(k).context(
                    "bootstrap_admin_key must be snip_ followed by 32 letters or digits",
                )?),
                None => None,
            };
        let settings = Settings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            url_policy: UrlPolicy {
                max_len: config.max_url_length,
                own_hosts: own_hosts(&base, &config),
                blocked_hosts: config
                    .blocked_hosts
                    .iter()
                    .map(|h| normalise_host(h))
                    .collect(),
            },
            body_limit: config.body_limit,
            trusted_proxies: config
                .rate_limits
                .trusted_proxies
                .iter()
                .map(|p| IpRange::parse(p).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()
                .context("rate_limits.trusted_proxies")?,
            analytics: config.analytics,
            hot_path: config.hot_path && config.role.serves_redirects(),
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
            max_keys_per_user: config.max_keys_per_user,
        };

        let store = AnyStore::from_config(&config).await?;
        // Everything but migrations and rebalancing reaches the store through its guard:
        // timeouts, the circuit breaker, retries of reads, latency per operation.
        let store_guard = Arc::new(Guard::new(Duration::from_millis(
            config.store_timeout_ms.max(1),
        )));
        let links: Arc<dyn LinkStore> = Arc::new(Guarded::<dyn LinkStore>::new(
            store.links(),
            store_guard.clone(),
        ));
        let users: Arc<dyn UserStore> = Arc::new(Guarded::<dyn UserStore>::new(
            store.users(),
            store_guard.clone(),
        ));
        let workers = CancellationToken::new();
        let nats = match &config.nats_url {
            Some(url) => Some(Arc::new(
                clicks::nats::Nats::connect(clicks::nats::NatsSettings {
                    url: url.clone(),
                    stream: config.nats_stream.clone(),
                    subject: config.nats_subject.clone(),
                    durable: config.nats_durable.clone(),
                })
                .await?,
            )),
            None => None,
        };
        if config.role == crate::config::Role::Worker && nats.is_none() {
            bail!("--role worker applies click events from NATS: give --nats too");
        }
        // With NATS, events that cannot be published wait on disk.
        let spill = match &nats {
            Some(_) => Some(clicks::spill::Spill::open(
                &config.click_spill_dir,
                config.click_spill_max_bytes,
            )?),
            None => None,
        };
        let (queue, click_worker) = clicks::start(
            QueueSettings {
                capacity: config.click_queue_capacity.max(1),
                flush_every: Duration::from_millis(config.click_flush_ms.max(10)),
                ..QueueSettings::default()
            },
            links.clone(),
            Arc::new(clicks::VisitorIds::new(links.clone())),
            nats.clone(),
            spill,
            config.role.consumes_clicks(),
            workers.clone(),
        );

        let redis = match &config.redis_url {
            Some(url) => Some(RedisConn::new(
                url,
                &config.redis_prefix,
                Duration::from_millis(config.redis_timeout_ms.max(1)),
            )?),
            None => None,
        };
        let l2 = redis.clone().map(|r| Arc::new(RedisCache::new(r)));
        let cache = Arc::new(RedirectCache::new(
            links.clone(),
            l2.clone(),
            CacheSettings {
                capacity: config.cache.capacity,
                ttl: Duration::from_secs(config.cache.ttl_secs),
                negative_ttl: Duration::from_secs(config.cache.negative_ttl_secs),
                stale_if_error: Duration::from_secs(config.cache.stale_if_error_secs),
            },
        ));
        let backend = match &redis {
            Some(r) => Backend::Redis(Box::new(RedisLimiter::new(
                r.clone(),
                config.rate_limits.nodes,
            ))),
            None => Backend::Local(LocalLimiter::default()),
        };
        let limiter = Arc::new(Limiter::new(backend, config.rate_limits.clone()));

        let mut background = Vec::new();
        if let Some(l2) = &l2 {
            background.push(l2.listen(cache.l1().clone(), workers.clone()));
        }
        background.push(tokio::spawn(sweep_buckets(
            limiter.clone(),
            clock.clone(),
            workers.clone(),
        )));
        let health = Arc::new(crate::app::health::Health::default());
        background.push(tokio::spawn(crate::app::health::watch(
            store.links(),
            store_guard.clone(),
            redis.clone(),
            health.clone(),
            workers.clone(),
        )));
        background.push(tokio::spawn(purge_idempotency(
            links.clone(),
            clock.clone(),
            workers.clone(),
        )));

        let state = AppState::new(crate::app::Services {
            links,
            users,
            clock,
            settings: Arc::new(settings),
            clicks: queue,
            cache,
            limiter,
            redis,
            store_guard,
            nats,
            http: Arc::default(),
            passwords: crate::app::password_gate::PasswordGate::new(
                config
                    .password_checks
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                config.password_check_queue,
            ),
            draining: Default::default(),
            health,
            geoip: match &config.geoip {
                Some(path) => Some(Arc::new(crate::clicks::geoip::GeoIp::open(path)?)),
                None => None,
            },
        });
        let new_admin_key = match bootstrap(&state, bootstrap_key).await? {
            Bootstrap::CreatedWithKey(key) => Some(key),
            Bootstrap::Created | Bootstrap::AlreadyDone => None,
        };
        Ok(App {
            state,
            store,
            config,
            workers,
            click_worker,
            background,
            new_admin_key,
        })
    }

    /// The first admin's key, when this start created it with a fresh key.
    pub fn new_admin_key(&self) -> Option<&ApiKey> {
        self.new_admin_key.as_ref()
    }

    /// The shared state (for tests that look behind the API).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` is cancelled; then drains (keeps serving for
    /// `shutdown_drain_secs` while `/readyz` answers 503), stops accepting, lets in-flight
    /// requests finish (up to `shutdown_grace_secs`), flushes queued clicks and closes the
    /// store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let router = crate::http::router(self.state.clone(), self.config.role);
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let drain = Duration::from_secs(self.config.shutdown_drain_secs);
        let stop_accepting = CancellationToken::new();
        let server = crate::http::serve::serve(
            listener,
            self.state.clone(),
            router,
            crate::http::conn::ConnectionLimits::from_config(&self.config.connections),
            stop_accepting.clone(),
        );
        let state = self.state.clone();
        let deadline = async {
            shutdown.cancelled().await;
            if !drain.is_zero() {
                state
                    .draining
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(seconds = drain.as_secs(), "draining: /readyz answers 503");
                tokio::time::sleep(drain).await;
            }
            stop_accepting.cancel();
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            res = server => res.context("server failed")?,
            () = deadline => tracing::warn!("shutdown grace period over; dropping open connections"),
        }
        self.workers.cancel();
        if let Err(e) = self.click_worker.await {
            tracing::error!(error = %e, "click worker failed");
        }
        for task in self.background {
            let _ = task.await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The names and addresses of this service that links must not point to: the base URL's
/// host, the listen address (unless it is a wildcard) and the configured extra names.
fn own_hosts(base: &url::Url, config: &Config) -> Vec<String> {
    let mut hosts: Vec<String> = base.host_str().map(normalise_host).into_iter().collect();
    if let Ok(addr) = config.listen.parse::<std::net::SocketAddr>()
        && !addr.ip().is_unspecified()
    {
        hosts.push(match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        });
    }
    hosts.extend(config.own_hosts.iter().map(|h| normalise_host(h)));
    hosts
}

/// Deletes idempotency records past their replay window, every 10 minutes (the first time
/// at start), so the table holds about a day of them.
async fn purge_idempotency(
    links: Arc<dyn LinkStore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let before = clock.now() - crate::app::links::IDEMPOTENCY_TTL;
                match links.purge_idempotency(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(records = n, "expired idempotency records purged"),
                    Err(e) => tracing::warn!(error = %e, "purging idempotency records failed"),
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Forgets refilled rate-limit buckets every 10 s so memory stays bounded.
async fn sweep_buckets(limiter: Arc<Limiter>, clock: Arc<dyn Clock>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => limiter.sweep(crate::clock::to_millis(clock.now())),
            () = stop.cancelled() => return,
        }
    }
}

/// `snip keys create`: a new key for the user with `email`, created as a member if missing.
/// With `admin`, the user is made an admin (created as one if missing) and the key gets
/// every scope unless `scopes` says otherwise: the way back in when no admin key is left.
pub async fn create_key_for(
    config: &Config,
    email: &str,
    scopes: Option<Vec<String>>,
    name: Option<String>,
    admin: bool,
) -> anyhow::Result<ApiKey> {
    use crate::domain::key::Scopes;
    use crate::domain::user::{Email, Role, UserDraft};
    use crate::store::{NewKey, StoreError};

    let db = AnyStore::from_config(config).await?;
    let store = db.users();
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let now = chrono::Utc::now();
    let role = if admin { Role::Admin } else { Role::Member };
    let mut user = match store.find_user_by_email(&email).await? {
        Some(u) => u,
        None => {
            let draft = UserDraft {
                email: email.clone(),
                name: String::new(),
                role,
            };
            match store.create_user(&draft, now).await {
                Ok(u) => u,
                Err(StoreError::Conflict(_)) => store
                    .find_user_by_email(&email)
                    .await?
                    .context("user vanished")?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    if admin && user.role != Role::Admin {
        let mut draft = user.draft();
        draft.role = Role::Admin;
        user = store.update_user(user.id, &draft, now).await?;
    }
    let scopes = match scopes {
        None if admin => Scopes::all(),
        None => Scopes::default_member(),
        Some(names) => {
            Scopes::parse_list(&names).map_err(|bad| anyhow::anyhow!("unknown scope {bad:?}"))?
        }
    };
    if scopes.contains(crate::domain::key::Scope::UsersAdmin) && user.role != Role::Admin {
        bail!("users:admin can only be given to an admin's key");
    }
    let key = ApiKey::generate();
    store
        .create_key(
            &NewKey {
                user_id: user.id,
                name: name.unwrap_or_else(|| "cli".into()),
                prefix: key.display_prefix().to_owned(),
                hash: key.hash(),
                scopes,
            },
            now,
        )
        .await?;
    db.close().await;
    Ok(key)
}
