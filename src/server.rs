//! Wiring: builds the store, the click pipeline and the state from a [`Config`], then serves
//! until told to stop. The binary and the integration tests both start snip through here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::health::Health;
use crate::app::password_gate::PasswordGate;
use crate::app::users::{Bootstrap, bootstrap};
use crate::app::{AppState, Settings};
use crate::cache::{CacheSettings, RedirectCache, RedisCache};
use crate::clicks::geoip::GeoIp;
use crate::clicks::{self, QueueSettings};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::key::ApiKey;
use crate::domain::target_url::{UrlPolicy, normalise_host};
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
    new_admin_sign_in: Option<String>,
}

/// A one-time sign-in link for the first admin, who has no password yet.
async fn first_sign_in_link(state: &AppState) -> anyhow::Result<String> {
    let email = crate::domain::user::Email::parse(crate::app::users::BOOTSTRAP_EMAIL)
        .map_err(|e| anyhow::anyhow!(e))?;
    let admin = state
        .users
        .find_user_by_email(&email)
        .await?
        .context("the first admin vanished")?;
    let token = crate::app::sessions::sign_in_link(state, admin.id).await?;
    Ok(crate::web::sign_in_url(&state.settings.base_url, &token))
}

/// `snip users set-password`: sets a user's dashboard password and ends their sessions.
pub async fn set_password(config: &Config, email: &str, password: &str) -> anyhow::Result<()> {
    let store = AnyStore::from_config(config).await?;
    let state = command_line_state(config, &store)?;
    let done = crate::app::sessions::set_password(&state, email, password).await;
    store.close().await;
    match done {
        Ok(()) => Ok(()),
        Err(crate::app::AppError::NotFound) => bail!("no user has the e-mail {email}"),
        Err(crate::app::AppError::Validation(errors)) => {
            let e = &errors[0];
            bail!("{}: {}", e.field, e.message)
        }
        Err(e) => Err(anyhow::anyhow!(e)),
    }
}

/// The store, state and caller of a command that acts for the user with `email`; close
/// the store when done.
async fn acting_for(
    config: &Config,
    email: &str,
) -> anyhow::Result<(AnyStore, AppState, crate::app::Caller)> {
    let store = AnyStore::from_config(config).await?;
    let found = match command_line_state(config, &store) {
        Ok(state) => crate::transfer::caller_for(&state, email)
            .await
            .map(|caller| (state, caller)),
        Err(e) => Err(e),
    };
    match found {
        Ok((state, caller)) => Ok((store, state, caller)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

/// `snip import`: imports the links of `source` for the user with `email`.
pub async fn import(
    config: &Config,
    from: crate::transfer::SourceKind,
    source: &str,
    secret: Option<&str>,
    email: &str,
    dry_run: bool,
) -> anyhow::Result<crate::transfer::Summary> {
    let items = crate::transfer::open(from, source, secret)?;
    let (store, state, caller) = acting_for(config, email).await?;
    let done = crate::transfer::import(&state, &caller, items, dry_run).await;
    store.close().await;
    done
}

/// `snip export`: writes the links of the user with `email` to `out`; returns how many.
pub async fn export(
    config: &Config,
    email: &str,
    json: bool,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<u64> {
    let (store, state, caller) = acting_for(config, email).await?;
    let done = crate::transfer::export(&state, &caller, json, out).await;
    store.close().await;
    done
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
        config.validate()?;
        let settings = settings(&config)?;
        let store = AnyStore::from_config(&config).await?;
        let guarded = GuardedStore::new(&store, &config);
        let workers = CancellationToken::new();
        let nats = connect_nats(&config).await?;
        let (queue, click_worker) = start_clicks(&config, &guarded, nats.clone(), &workers)?;
        let redis = redis(&config)?;
        let l2 = redis.clone().map(|r| Arc::new(RedisCache::new(r)));
        let cache = cache(&config, guarded.links.clone(), l2.clone());
        let limiter = limiter(&config, redis.as_ref());
        let state = AppState::new(crate::app::Services {
            links: guarded.links,
            users: guarded.users,
            clock,
            settings: Arc::new(settings),
            clicks: queue,
            cache,
            limiter,
            redis,
            store_guard: guarded.guard,
            nats,
            http: Arc::default(),
            passwords: password_gate(&config),
            draining: Default::default(),
            health: Arc::new(Health::default()),
            geoip: geoip(&config)?,
        });
        let background = start_background(&state, &store, l2.as_ref(), &workers);
        let (created, new_admin_key) = match bootstrap(&state, config.bootstrap_key()?).await? {
            Bootstrap::CreatedWithKey(key) => (true, Some(key)),
            Bootstrap::Created => (true, None),
            Bootstrap::AlreadyDone => (false, None),
        };
        let new_admin_sign_in = if created {
            Some(first_sign_in_link(&state).await?)
        } else {
            None
        };
        Ok(App {
            state,
            store,
            config,
            workers,
            click_worker,
            background,
            new_admin_key,
            new_admin_sign_in,
        })
    }

    /// The first admin's one-time sign-in link, when this start created the admin.
    pub fn new_admin_sign_in(&self) -> Option<&str> {
        self.new_admin_sign_in.as_deref()
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
        let pages = crate::web::routes(&self.state)
            .merge(crate::graphql::routes(&self.state))
            .merge(crate::compat::routes(&self.state));
        let router = crate::http::router(self.state.clone(), self.config.role, pages);
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

/// The settings the use cases and handlers read, from a validated configuration.
fn settings(config: &Config) -> anyhow::Result<Settings> {
    let (base_url, base) = config.public_base_url()?;
    Ok(Settings {
        base_url,
        signature_secret: config.signature_secret()?,
        url_policy: UrlPolicy {
            max_len: config.max_url_length,
            own_hosts: own_hosts(&base, config),
            blocked_hosts: config
                .blocked_hosts
                .iter()
                .map(|h| normalise_host(h))
                .collect(),
        },
        body_limit: config.body_limit,
        trusted_proxies: config.trusted_proxies()?,
        analytics: config.analytics,
        hot_path: config.hot_path && config.role.serves_redirects(),
        request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
        max_keys_per_user: config.max_keys_per_user,
        sessions: crate::app::sessions::SessionPolicy {
            idle: chrono::TimeDelta::minutes(config.dashboard.session_idle_minutes.max(1) as i64),
            absolute: chrono::TimeDelta::hours(config.dashboard.session_max_hours.max(1) as i64),
        },
        landing: config.landing()?,
        graphql: config.graphql,
    })
}

/// The store's ports behind one guard. Everything but migrations and rebalancing reaches
/// the store through it: timeouts, the circuit breaker, retries of reads, latency per
/// operation.
struct GuardedStore {
    guard: Arc<Guard>,
    links: Arc<dyn LinkStore>,
    users: Arc<dyn UserStore>,
}

impl GuardedStore {
    fn new(store: &AnyStore, config: &Config) -> Self {
        let guard = store_guard(config);
        Self {
            links: Arc::new(Guarded::<dyn LinkStore>::new(store.links(), guard.clone())),
            users: Arc::new(Guarded::<dyn UserStore>::new(store.users(), guard.clone())),
            guard,
        }
    }
}

/// The guard of store calls, with its timeout.
fn store_guard(config: &Config) -> Arc<Guard> {
    Arc::new(Guard::new(Duration::from_millis(
        config.store_timeout_ms.max(1),
    )))
}

/// NATS, when `nats_url` is set.
async fn connect_nats(config: &Config) -> anyhow::Result<Option<Arc<clicks::nats::Nats>>> {
    let Some(url) = &config.nats_url else {
        return Ok(None);
    };
    let nats = clicks::nats::Nats::connect(clicks::nats::NatsSettings {
        url: url.clone(),
        stream: config.nats_stream.clone(),
        subject: config.nats_subject.clone(),
        durable: config.nats_durable.clone(),
    })
    .await?;
    Ok(Some(Arc::new(nats)))
}

/// Starts the click pipeline: the queue redirects report to, and its worker.
fn start_clicks(
    config: &Config,
    store: &GuardedStore,
    nats: Option<Arc<clicks::nats::Nats>>,
    workers: &CancellationToken,
) -> anyhow::Result<(clicks::ClickQueue, tokio::task::JoinHandle<()>)> {
    // With NATS, events that cannot be published wait on disk.
    let spill = match &nats {
        Some(_) => Some(clicks::spill::Spill::open(
            &config.click_spill_dir,
            config.click_spill_max_bytes,
        )?),
        None => None,
    };
    Ok(clicks::start(
        QueueSettings {
            capacity: config.click_queue_capacity.max(1),
            flush_every: Duration::from_millis(config.click_flush_ms.max(10)),
            ..QueueSettings::default()
        },
        store.links.clone(),
        Arc::new(clicks::VisitorIds::new(store.links.clone())),
        nats,
        spill,
        config.role.consumes_clicks(),
        workers.clone(),
    ))
}

/// The Redis connection, when `redis_url` is set (it connects lazily).
fn redis(config: &Config) -> anyhow::Result<Option<RedisConn>> {
    config
        .redis_url
        .as_deref()
        .map(|url| {
            RedisConn::new(
                url,
                &config.redis_prefix,
                Duration::from_millis(config.redis_timeout_ms.max(1)),
            )
        })
        .transpose()
}

/// The redirect cache: L1 in this process, L2 on Redis when there is one.
fn cache(
    config: &Config,
    links: Arc<dyn LinkStore>,
    l2: Option<Arc<RedisCache>>,
) -> Arc<RedirectCache> {
    Arc::new(RedirectCache::new(
        links,
        l2,
        CacheSettings {
            capacity: config.cache.capacity,
            ttl: Duration::from_secs(config.cache.ttl_secs),
            negative_ttl: Duration::from_secs(config.cache.negative_ttl_secs),
            stale_if_error: Duration::from_secs(config.cache.stale_if_error_secs),
        },
    ))
}

/// The rate limiter: buckets on Redis when there is one, else in this process.
fn limiter(config: &Config, redis: Option<&RedisConn>) -> Arc<Limiter> {
    let backend = match redis {
        Some(r) => Backend::Redis(Box::new(RedisLimiter::new(
            r.clone(),
            config.rate_limits.nodes,
        ))),
        None => Backend::Local(LocalLimiter::default()),
    };
    Arc::new(Limiter::new(backend, config.rate_limits.clone()))
}

/// Where password hashing and checks wait for a turn: as many at a time as
/// `password_checks` says, or as there are CPUs.
fn password_gate(config: &Config) -> PasswordGate {
    PasswordGate::new(
        config
            .password_checks
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        config.password_check_queue,
    )
}

/// The GeoIP database, when `geoip` is set.
fn geoip(config: &Config) -> anyhow::Result<Option<Arc<GeoIp>>> {
    config
        .geoip
        .as_deref()
        .map(|path| GeoIp::open(path).map(Arc::new))
        .transpose()
}

/// Starts the tasks that run beside the server until `workers` is cancelled: other nodes'
/// cache invalidations, the rate-limit sweep, the health checks and the idempotency purge.
fn start_background(
    state: &AppState,
    store: &AnyStore,
    l2: Option<&Arc<RedisCache>>,
    workers: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(l2) = l2 {
        tasks.push(l2.listen(state.cache.l1().clone(), workers.clone()));
    }
    tasks.push(tokio::spawn(sweep_buckets(
        state.limiter.clone(),
        state.clock.clone(),
        workers.clone(),
    )));
    // The health checks reach the store without its guard, so that an open breaker does
    // not hide a database that is back.
    tasks.push(tokio::spawn(crate::app::health::watch(
        store.links(),
        state.store_guard.clone(),
        state.redis.clone(),
        state.health.clone(),
        workers.clone(),
    )));
    tasks.push(tokio::spawn(purge_expired(
        state.links.clone(),
        state.users.clone(),
        state.clock.clone(),
        workers.clone(),
    )));
    tasks
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

/// Every 10 minutes (the first time at start): deletes idempotency records past their
/// replay window, so the table holds about a day of them, and dashboard sessions and
/// sign-in links past their absolute end.
async fn purge_expired(
    links: Arc<dyn LinkStore>,
    users: Arc<dyn UserStore>,
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
                match users.purge_sessions(clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "expired sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "purging sessions failed"),
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
    use crate::domain::user::Email;

    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let store = AnyStore::from_config(config).await?;
    let created = match command_line_state(config, &store) {
        Ok(state) => create_key_as_operator(&state, email, scopes, name, admin).await,
        Err(e) => Err(e),
    };
    store.close().await;
    created
}

/// Creates the key through the same use case as `POST /users/{id}/keys`, called by an
/// operator who acts as the user and holds every scope.
async fn create_key_as_operator(
    state: &AppState,
    email: crate::domain::user::Email,
    scopes: Option<Vec<String>>,
    name: Option<String>,
    admin: bool,
) -> anyhow::Result<ApiKey> {
    use crate::app::{AppError, Caller};
    use crate::domain::key::{Scope, Scopes};
    use crate::domain::user::{Role, UserDraft};
    use crate::store::StoreError;

    let now = state.clock.now();
    let role = if admin { Role::Admin } else { Role::Member };
    let mut user = match state.users.find_user_by_email(&email).await? {
        Some(u) => u,
        None => {
            let draft = UserDraft {
                email: email.clone(),
                name: String::new(),
                role,
            };
            match state.users.create_user(&draft, now).await {
                Ok(u) => u,
                Err(StoreError::Conflict(_)) => state
                    .users
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
        user = state.users.update_user(user.id, &draft, now).await?;
    }
    let operator = Caller {
        scopes: Scopes::all(),
        key: None,
        user,
    };
    // An admin's key gets every scope by default; the use case's default is a member's.
    let scopes = scopes.or_else(|| admin.then(|| Scope::ALL.map(|s| s.as_str().into()).into()));
    let name = Some(name.unwrap_or_else(|| "cli".into()));
    let created = crate::app::users::create_key(state, &operator, operator.user.id, name, scopes);
    match created.await {
        Ok((_, key)) => Ok(key),
        Err(AppError::Validation(errors)) => Err(anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(e) => Err(e.into()),
    }
}

/// The state the command line works with: the store without its guard, the configured
/// settings, and nothing that runs in the background (no Redis, no NATS; clicks go
/// nowhere).
fn command_line_state(config: &Config, store: &AnyStore) -> anyhow::Result<AppState> {
    let links = store.links();
    let (clicks, _) = clicks::queue::bounded(1, Arc::default());
    let settings = Settings {
        // The command line is the way back in when every key is lost, so the limit on
        // live keys does not apply to it.
        max_keys_per_user: u32::MAX,
        ..settings(config)?
    };
    Ok(AppState::new(crate::app::Services {
        links: links.clone(),
        users: store.users(),
        clock: Arc::new(crate::clock::SystemClock),
        settings: Arc::new(settings),
        clicks,
        cache: cache(config, links, None),
        limiter: limiter(config, None),
        redis: None,
        store_guard: store_guard(config),
        nats: None,
        http: Arc::default(),
        passwords: password_gate(config),
        draining: Default::default(),
        health: Arc::default(),
        geoip: None,
    }))
}
