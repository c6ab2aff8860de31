//! Use cases: what the API can do, independent of HTTP. Handlers parse requests, call these
//! functions and render the results.

pub mod health;
pub mod import;
pub mod links;
pub mod password_gate;
pub mod redirect;
pub mod sessions;
pub mod stats;
pub mod users;

use std::sync::Arc;

use crate::cache::RedirectCache;
use crate::clicks::ClickQueue;
use crate::clock::Clock;
use crate::domain::FieldError;
use crate::domain::key::{Scope, Scopes};
use crate::domain::target_url::UrlPolicy;
use crate::domain::user::{Role, UserId};
use crate::ratelimit::Limiter;
use crate::store::{KeyRecord, LinkStore, StoreError, Taken, UserRecord, UserStore};

/// Everything a request may need, built once and shared: a clone (one per request and
/// middleware layer) is a single reference-count increment.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every request.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    /// Link storage.
    pub links: Arc<dyn LinkStore>,
    /// User and key storage.
    pub users: Arc<dyn UserStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Settings derived from the configuration.
    pub settings: Arc<Settings>,
    /// Where redirects report clicks.
    pub clicks: ClickQueue,
    /// The redirect cache in front of `links`.
    pub cache: Arc<RedirectCache>,
    /// Rate limits.
    pub limiter: Arc<Limiter>,
    /// The Redis connection, when one is configured.
    pub redis: Option<crate::redis_conn::RedisConn>,
    /// Countries of client addresses, when a GeoIP database is configured.
    pub geoip: Option<Arc<crate::clicks::geoip::GeoIp>>,
    /// What every store call goes through (its breaker and latencies, for health and
    /// metrics).
    pub store_guard: Arc<crate::store::guarded::Guard>,
    /// NATS, when click events go through it.
    pub nats: Option<Arc<crate::clicks::nats::Nats>>,
    /// Request and redirect counters of the HTTP edge.
    pub http: Arc<crate::metrics::HttpMetrics>,
    /// Where password hashing and checks wait for a turn.
    pub passwords: password_gate::PasswordGate,
    /// Set at shutdown: `/readyz` answers 503 while the node still serves.
    pub draining: std::sync::atomic::AtomicBool,
    /// What the background checks of the store and Redis last found.
    pub health: Arc<health::Health>,
}

/// Settings the use cases and handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base of short URLs, without a trailing slash.
    pub base_url: String,
    /// The secret YOURLS signature tokens are made with; `None` turns time-limited
    /// signatures off.
    pub signature_secret: Option<String>,
    /// Rules for destination URLs.
    pub url_policy: UrlPolicy,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::net::IpRange>,
    /// Whether redirects produce click events.
    pub analytics: bool,
    /// Whether cached redirects take the hot path (see `http/serve.rs`).
    pub hot_path: bool,
    /// Longest time one request may take.
    pub request_timeout: std::time::Duration,
    /// Most live API keys per user.
    pub max_keys_per_user: u32,
    /// How long dashboard sessions last.
    pub sessions: sessions::SessionPolicy,
    /// What `GET /` answers.
    pub landing: crate::config::Landing,
    /// Bounds on GraphQL requests.
    pub graphql: crate::config::GraphqlLimits,
}

/// The authenticated caller of a request: an API key's owner, or a signed-in person.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: UserRecord,
    /// What the caller may do: the key's scopes, or for a signed-in person all that their
    /// role allows ([`Caller::signed_in`]).
    pub scopes: Scopes,
    /// The API key in use; `None` for a dashboard session or the command line.
    pub key: Option<KeyRecord>,
}

impl Caller {
    /// A caller acting with an API key.
    pub fn with_key(user: UserRecord, key: KeyRecord) -> Self {
        Self {
            user,
            scopes: key.scopes.clone(),
            key: Some(key),
        }
    }

    /// A person signed in to the dashboard: an admin may do everything, a member anything
    /// with their own links, user record and keys.
    pub fn signed_in(user: UserRecord) -> Self {
        let scopes = match user.role {
            Role::Admin => Scopes::all(),
            Role::Member => Scopes::new(vec![
                Scope::LinksRead,
                Scope::LinksWrite,
                Scope::AccountWrite,
            ]),
        };
        Self {
            user,
            scopes,
            key: None,
        }
    }

    /// Fails unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.grants(scope) {
            Ok(())
        } else {
            Err(AppError::MissingScope(scope))
        }
    }

    /// Whether the caller may act on every user's resources.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin && self.scopes.contains(Scope::UsersAdmin)
    }

    /// Whether the caller may act on resources owned by `owner`.
    pub fn may_access(&self, owner: UserId) -> bool {
        self.user.id == owner || self.is_admin()
    }
}

/// Why a use case failed. The HTTP layer maps each to a status and a problem document.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Fields did not validate (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The thing does not exist or is not the caller's (404).
    #[error("not found")]
    NotFound,
    /// A unique value is taken (409).
    #[error("{0} already taken")]
    Conflict(Taken),
    /// The key lacks a scope (403).
    #[error("missing scope {}", .0.as_str())]
    MissingScope(Scope),
    /// The caller may not do this, whatever the scope (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request would break a rule of the service's state, such as the cap on a user's
    /// keys or keeping one admin (409, with a problem type of its own).
    #[error("{1}")]
    StateConflict(&'static str, &'static str),
    /// An idempotency key was reused with another request (422).
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// The first request with this idempotency key has not finished (409).
    #[error("a request with this idempotency key is in flight")]
    IdempotencyInFlight,
    /// Too much work is waiting already (503 with `Retry-After`).
    #[error("{0}")]
    Busy(&'static str),
    /// Too many items in one request (413).
    #[error("too many items: at most {0}")]
    TooManyItems(usize),
    /// The store failed (500; logged, not shown).
    #[error("store failure")]
    Store(#[source] StoreError),
    /// Anything else unexpected (500; logged, not shown).
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(t) => AppError::Conflict(t),
            other => AppError::Store(other),
        }
    }
}

impl From<Vec<FieldError>> for AppError {
    fn from(errors: Vec<FieldError>) -> Self {
        AppError::Validation(errors)
    }
}

/// Runs CPU-heavy work (password hashing) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("blocking task failed: {e}")))
}
