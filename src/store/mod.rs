//! Storage ports: the traits the application talks to, and the records they exchange.
//! Adapters live beside this file, one per backend (`sqlite/`, `postgres.rs`); `sql.rs`
//! holds the statements they share and `rows.rs` the turning of rows into records.

pub mod clicks;
pub mod guarded;
pub mod postgres;
pub mod ring;
mod rows;
pub mod sharded;
#[doc(hidden)]
pub mod sql;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use clicks::{ClickFact, ClickTotals, Names};

use crate::domain::code::Code;
use crate::domain::key::Scopes;
use crate::domain::link::RedirectStatus;
use crate::domain::target_url::TargetUrl;
use crate::domain::user::{Email, Role, UserDraft, UserId};

/// The store a database URL names: `sqlite://…` or `postgres://…`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// An embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database.
    Postgres(postgres::PgStore),
    /// Links on several PostgreSQL shards.
    Sharded(sharded::ShardedStore),
}

impl AnyStore {
    /// Opens the store `url` names and applies its migrations.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let shown = crate::config::redact_url(url);
        if url.starts_with("sqlite:") {
            let s = sqlite::SqliteStore::connect(url).await;
            Ok(Self::Sqlite(s.with_context(|| format!("opening {shown}"))?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let s = postgres::PgStore::connect(url).await;
            Ok(Self::Postgres(
                s.with_context(|| format!("opening {shown}"))?,
            ))
        } else {
            bail!("unsupported database URL {shown:?}: use sqlite://PATH or postgres://…")
        }
    }

    /// Opens the store the configuration names: its shards when it has any, else
    /// `database_url`.
    pub async fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        if config.shards.is_empty() {
            return Self::open(&config.database_url).await;
        }
        let mut shards = Vec::with_capacity(config.shards.len());
        for s in &config.shards {
            let shown = crate::config::redact_url(&s.url);
            anyhow::ensure!(
                s.url.starts_with("postgres://") || s.url.starts_with("postgresql://"),
                "shard {shown:?}: shards are PostgreSQL databases"
            );
            let store = postgres::PgStore::connect(&s.url)
                .await
                .with_context(|| format!("opening shard {shown}"))?;
            shards.push(sharded::Shard {
                name: s.ring_name(),
                vnodes: s.vnodes.unwrap_or(200),
                store: Arc::new(store),
            });
        }
        Ok(Self::Sharded(sharded::ShardedStore::new(shards)?))
    }

    /// The link port.
    pub fn links(&self) -> Arc<dyn LinkStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
            Self::Sharded(s) => Arc::new(s.clone()),
        }
    }

    /// The user port.
    pub fn users(&self) -> Arc<dyn UserStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
            Self::Sharded(s) => Arc::new(s.clone()),
        }
    }

    /// Closes its connections.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
            Self::Sharded(s) => {
                for shard in s.shards() {
                    shard.store.close().await;
                }
            }
        }
    }
}

/// What can go wrong in a store, as far as callers need to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is deleted).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; names what was taken.
    #[error("{0} already taken")]
    Conflict(Taken),
    /// The database cannot be reached (connection refused or lost, no answer in time, or
    /// its circuit breaker is open). Clients get 503 with `Retry-After`.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a query failed. Logged, never shown to clients.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Which unique value a conflicting write collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A link's code.
    Code,
    /// A user's e-mail.
    Email,
    /// An idempotency key.
    IdempotencyKey,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code => "code",
            Self::Email => "email",
            Self::IdempotencyKey => "idempotency key",
        })
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A live link as stored, with its click total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// The short code.
    pub code: Code,
    /// The fields clients set.
    pub fields: LinkFields,
    /// The owner.
    pub owner_id: UserId,
    /// Redirects counted so far.
    pub clicks: i64,
    /// Creation instant.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The mutable fields of a link, in stored form (password already hashed).
///
/// `domain::link::LinkDraft` is the same but for the password: it carries the change a
/// client asked for, this the hash to store (see there why they are two types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFields {
    /// Destination.
    pub url: TargetUrl,
    /// Title.
    pub title: Option<String>,
    /// Sorted tags.
    pub tags: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Click limit.
    pub max_clicks: Option<i64>,
    /// Redirect status.
    pub redirect_status: RedirectStatus,
    /// argon2 PHC string, when the link is password-protected.
    pub password_hash: Option<String>,
}

/// What a redirect needs to know about a code, deleted or not. Kept small: every node's L1
/// holds one per cached link, and most links have no password, expiry or click limit, so
/// those live apart, boxed, only for the links that have them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    /// Destination.
    pub url: TargetUrl,
    /// Redirect status.
    pub redirect_status: RedirectStatus,
    /// Set once the link is deleted: the code answers 410 for ever.
    pub deleted: bool,
    gate: Option<Box<Gate>>,
}

/// What may stand between a visitor and a link's URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// Password hash, if protected.
    pub password_hash: Option<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Click limit; a link that has one must be counted atomically.
    pub max_clicks: Option<i64>,
    /// Redirects counted against `max_clicks` so far.
    pub clicks_used: i64,
}

impl RedirectTarget {
    /// A target; `gate` is kept only when it holds something.
    pub fn new(url: TargetUrl, redirect_status: RedirectStatus, deleted: bool, gate: Gate) -> Self {
        let open =
            gate.password_hash.is_none() && gate.expires_at.is_none() && gate.max_clicks.is_none();
        Self {
            url,
            redirect_status,
            deleted,
            gate: (!open).then(|| Box::new(gate)),
        }
    }

    /// Password hash, if protected.
    pub fn password_hash(&self) -> Option<&str> {
        self.gate.as_ref()?.password_hash.as_deref()
    }

    /// Expiry.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.gate.as_ref()?.expires_at
    }

    /// Click limit; a link that has one must be counted atomically.
    pub fn max_clicks(&self) -> Option<i64> {
        self.gate.as_ref()?.max_clicks
    }

    /// Redirects counted against `max_clicks` so far (0 without a limit).
    pub fn clicks_used(&self) -> i64 {
        self.gate.as_ref().map_or(0, |g| g.clicks_used)
    }
}

/// A position in the newest-first order of a user's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCursor {
    /// `created_at` of the last link seen, in milliseconds.
    pub created_at: i64,
    /// Its code, to break ties.
    pub code: String,
}

impl LinkCursor {
    /// The opaque text clients pass back.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}.{}", self.created_at, self.code))
    }

    /// The cursor of a text made by [`LinkCursor::encode`]; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (at, code) = raw.split_once('.')?;
        Some(Self {
            created_at: at.parse().ok()?,
            code: code.to_owned(),
        })
    }
}

/// Which page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// Keyset pagination: the links after the cursor (from the start when `None`).
    After(Option<LinkCursor>),
    /// Offset pagination: skip this many links; the page also reports the total.
    Offset(u64),
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkOrder {
    /// Newest first (the index order; pages by cursor or offset).
    #[default]
    Newest,
    /// Most clicked first, then newest (pages by offset only: totals move).
    MostClicked,
    /// Least clicked first, then oldest (pages by offset only).
    LeastClicked,
    /// Oldest first (pages by offset only).
    Oldest,
}

impl LinkOrder {
    /// The SQL `ORDER BY` of this order; ties always end on the code, so pages are stable.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Newest => " ORDER BY created_at DESC, code ASC",
            Self::MostClicked => " ORDER BY clicks DESC, created_at DESC, code ASC",
            Self::LeastClicked => " ORDER BY clicks ASC, created_at ASC, code DESC",
            Self::Oldest => " ORDER BY created_at ASC, code DESC",
        }
    }

    /// Compares two links in this order (for merging pages from several shards).
    pub fn compare(self, a: &LinkRecord, b: &LinkRecord) -> std::cmp::Ordering {
        let newest = || {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.code.cmp(&b.code))
        };
        match self {
            Self::Newest => newest(),
            Self::MostClicked => b.clicks.cmp(&a.clicks).then_with(newest),
            Self::LeastClicked => a.clicks.cmp(&b.clicks).then_with(|| newest().reverse()),
            Self::Oldest => newest().reverse(),
        }
    }
}

/// A listing query over one owner's live links.
#[derive(Debug, Clone)]
pub struct LinkQuery {
    /// Whose links.
    pub owner_id: UserId,
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only links whose url, title or code contains this text.
    pub q: Option<String>,
    /// Only links to exactly this URL (as stored: normalised).
    pub url: Option<String>,
    /// The order.
    pub order: LinkOrder,
    /// Page size.
    pub limit: u32,
    /// Which page.
    pub page: PageRequest,
}

/// One page of links.
#[derive(Debug, Clone)]
pub struct LinkPage {
    /// The links, in the query's order.
    pub links: Vec<LinkRecord>,
    /// Whether more links follow.
    pub has_more: bool,
    /// The number of matching links (offset pagination only).
    pub total: Option<u64>,
}

/// A stored response to replay for a repeated idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// An idempotency key and what was answered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Hash of the request that first used the key.
    pub request_hash: String,
    /// The answer, once the request completed.
    pub response: Option<StoredResponse>,
    /// When the key was first used.
    pub created_at: DateTime<Utc>,
}

/// An idempotency key to save with a created link, in the same transaction.
#[derive(Debug, Clone)]
pub struct IdempotencySave {
    /// The user the key belongs to (keys are per user).
    pub user_id: UserId,
    /// The client's key.
    pub key: String,
    /// Hash of the request body.
    pub request_hash: String,
    /// The response to replay.
    pub response: StoredResponse,
    /// Records older than this may be overwritten.
    pub expired_before: DateTime<Utc>,
}

/// Links: creation, lookup, listing, change, deletion and click accounting.
#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Inserts a link, failing with `Conflict(Code)` when the code exists (even deleted), and
    /// with `Conflict(IdempotencyKey)` when `idempotency` names a live key.
    async fn insert_link(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()>;

    /// Inserts many links in one transaction; one result per link, in order. A taken code
    /// fails only its own item.
    async fn insert_links(&self, links: &[LinkRecord]) -> StoreResult<Vec<StoreResult<()>>>;

    /// A live link with its click total.
    async fn get_link(&self, code: &Code) -> StoreResult<Option<LinkRecord>>;

    /// What a redirect of `code` needs, including deleted links.
    async fn get_redirect(&self, code: &Code) -> StoreResult<Option<RedirectTarget>>;

    /// Counts one use of a link with `max_clicks`, atomically; `false` when it is used up.
    async fn consume_click(&self, code: &Code) -> StoreResult<bool>;

    /// Replaces a live link's fields; `NotFound` if it is not live.
    async fn update_link(
        &self,
        code: &Code,
        fields: &LinkFields,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRecord>;

    /// Tombstones a live link; `NotFound` if it is not live.
    async fn delete_link(&self, code: &Code, now: DateTime<Utc>) -> StoreResult<()>;

    /// Tombstones every live link of an owner; returns their codes.
    async fn delete_links_of(&self, owner_id: UserId, now: DateTime<Utc>)
    -> StoreResult<Vec<Code>>;

    /// A page of one owner's live links, newest first.
    async fn list_links(&self, query: &LinkQuery) -> StoreResult<LinkPage>;

    /// The record of an idempotency key, if one was saved and is newer than `not_before`.
    async fn get_idempotency(
        &self,
        user_id: UserId,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    /// Deletes idempotency records made before `before` (they can no longer be replayed);
    /// returns how many went.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Counts a batch of clicks in one transaction: hourly totals (bots apart), per-day
    /// dimensions and unique visitors of people. A batch whose `batch_id` was applied before
    /// is skipped whole, and so is each event whose `event_id` was, so a retried batch and a
    /// redelivered event count once. Returns how many were new.
    async fn apply_clicks(&self, batch_id: &str, clicks: &[ClickFact]) -> StoreResult<usize>;

    /// Writes clicks already added up, in one transaction, unless a batch with `batch_id`
    /// was applied before (then nothing changes and the answer is `false`).
    async fn apply_click_totals(&self, batch_id: &str, totals: &ClickTotals) -> StoreResult<bool>;

    /// Click statistics of a link over `[from, to)`, the series in buckets of `bucket_ms`.
    async fn click_stats(
        &self,
        code: &Code,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_ms: i64,
    ) -> StoreResult<ClickStats>;

    /// Click totals of many links over `[from, to)`, in one statement per database (the
    /// series of [`LinkStore::click_stats`], summed). Links without clicks are absent.
    async fn click_sums(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<Code, ClickSums>>;

    /// The series of many links over `[from, to)` in buckets of `bucket_ms`, in one
    /// statement per database: per link, `(bucket start ms, all clicks, bot clicks)`,
    /// ascending, only non-empty buckets.
    async fn click_series(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_ms: i64,
    ) -> StoreResult<HashMap<Code, Vec<(i64, i64, i64)>>>;

    /// Clicks of people per dimension value of many links, over the days `[from, to)`
    /// touches, in one statement per database: per link, `(dimension, value, clicks)`.
    async fn click_dims(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<Code, Vec<(String, String, i64)>>>;

    /// How many live links each owner has, in one statement per database. Owners without
    /// links are absent.
    async fn count_links(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, u64>>;

    /// The tags of each owner's live links, with how many links carry each, sorted by tag,
    /// in one statement per database. Owners without tags are absent.
    async fn owner_tags(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, Vec<TagCount>>>;

    /// The clicks counted on all of `owner`'s live links.
    async fn owner_clicks(&self, owner: UserId) -> StoreResult<i64>;

    /// The salt of visitor hashes for the day starting at `day_ms`: the stored one, or
    /// `candidate` if there is none yet. Salts of earlier days are deleted, so no visitor
    /// can be followed from one day to the next.
    async fn daily_salt(&self, day_ms: i64, candidate: &str) -> StoreResult<String>;

    /// Checks that the store answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pools, for metrics.
    fn pool_usage(&self) -> Vec<PoolUsage> {
        Vec::new()
    }
}

/// One connection pool's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool, e.g. `write`, `read`, or a shard's name.
    pub pool: String,
    /// Open connections.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// Most connections it may open.
    pub max: u32,
}

impl PoolUsage {
    /// The use of an sqlx pool named `pool`.
    pub fn of<DB: sqlx::Database>(pool: &str, p: &sqlx::Pool<DB>) -> Self {
        Self {
            pool: pool.to_owned(),
            size: p.size(),
            idle: p.num_idle() as u32,
            max: p.options().get_max_connections(),
        }
    }
}

/// Aggregated clicks of one link over a time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClickStats {
    /// `(bucket start ms, all clicks, bot clicks)`, ascending, only non-empty buckets.
    pub series: Vec<(i64, i64, i64)>,
    /// `(dimension, value, clicks)` of people, unordered.
    pub dims: Vec<(String, String, i64)>,
    /// Distinct visitors per day, summed over the days.
    pub unique_visitors: i64,
}

/// Click totals of one link over a time range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClickSums {
    /// People and bots.
    pub total: i64,
    /// Bots.
    pub bots: i64,
    /// Distinct visitors per day, summed over the days.
    pub unique_visitors: i64,
}

/// A tag and how many of an owner's live links carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// Live links with it.
    pub links: u64,
}

/// Most keys in one statement of a batch read; longer lists take several statements.
pub const BATCH_CHUNK: usize = 500;

/// A live user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Unique e-mail.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creation instant.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl UserRecord {
    /// The fields a client may change.
    pub fn draft(&self) -> UserDraft {
        UserDraft {
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role,
        }
    }
}

/// An API key's record (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: UserId,
    /// A label.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Scopes,
    /// Creation instant.
    pub created_at: DateTime<Utc>,
    /// Last use, to within a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key to store: everything but its id.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Owner.
    pub user_id: UserId,
    /// Label.
    pub name: String,
    /// First characters of the key.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: String,
    /// Scopes.
    pub scopes: Scopes,
}

/// What a session row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A signed-in browser.
    Web,
    /// A one-time sign-in link, used up when followed.
    Link,
}

impl SessionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Link => "link",
        }
    }

    /// The kind of a stored name (an unknown name reads as the narrower `Link`).
    pub fn parse(s: &str) -> Self {
        if s == "web" { Self::Web } else { Self::Link }
    }
}

/// A browser session or sign-in link, as stored (the token itself never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session or sign-in link.
    pub kind: SessionKind,
    /// The form token of the session.
    pub csrf: String,
    /// Sign-in instant.
    pub created_at: DateTime<Utc>,
    /// Last use, to within a minute.
    pub seen_at: DateTime<Utc>,
    /// The absolute end.
    pub expires_at: DateTime<Utc>,
}

/// A session or sign-in link to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Whose.
    pub user_id: UserId,
    /// Session or sign-in link.
    pub kind: SessionKind,
    /// The form token.
    pub csrf: String,
    /// The absolute end.
    pub expires_at: DateTime<Utc>,
}

/// Users and their API keys.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates the first admin and its key, only if there is no user at all; `false` when
    /// users already exist.
    async fn bootstrap_admin(
        &self,
        admin: &UserDraft,
        key: &NewKey,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Creates a user; `Conflict(Email)` when the e-mail is taken.
    async fn create_user(&self, user: &UserDraft, now: DateTime<Utc>) -> StoreResult<UserRecord>;

    /// A live user.
    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>>;

    /// The live users of `ids` (unknown or deleted ones are absent), in one statement.
    async fn get_users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>>;

    /// A live user by e-mail.
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>>;

    /// Live users with ids above `after`, ascending; and whether more follow.
    async fn list_users(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<(Vec<UserRecord>, bool)>;

    /// How many live admins there are.
    async fn count_admins(&self) -> StoreResult<u64>;

    /// Replaces a user's fields; `Conflict(Email)` or `NotFound`.
    async fn update_user(
        &self,
        id: UserId,
        user: &UserDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord>;

    /// Deletes a user and revokes their keys; `NotFound` if not live.
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()>;

    /// Stores a new key.
    async fn create_key(&self, key: &NewKey, now: DateTime<Utc>) -> StoreResult<KeyRecord>;

    /// A user's live keys, oldest first.
    async fn list_keys(&self, user_id: UserId) -> StoreResult<Vec<KeyRecord>>;

    /// Revokes a user's key; `NotFound` if it is not theirs or already revoked.
    async fn revoke_key(&self, user_id: UserId, key_id: i64, now: DateTime<Utc>)
    -> StoreResult<()>;

    /// The live user and key for a key hash.
    async fn authenticate(&self, key_hash: &str) -> StoreResult<Option<(UserRecord, KeyRecord)>>;

    /// The hashes of every live key (not revoked, of a live user).
    async fn live_key_hashes(&self) -> StoreResult<Vec<String>>;

    /// Records that a key was used, at most once a minute.
    async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) -> StoreResult<()>;

    /// A live user's password hash; `None` when the user has none (or does not exist).
    async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>>;

    /// Sets a live user's password hash.
    async fn set_password(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Stores a new session or sign-in link.
    async fn create_session(&self, session: &NewSession, now: DateTime<Utc>) -> StoreResult<()>;

    /// The session or sign-in link of a token hash, with its live user. Expiry is the
    /// caller's to check.
    async fn session(&self, token_hash: &str) -> StoreResult<Option<(UserRecord, SessionRecord)>>;

    /// Records a session's use, at most once a minute.
    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Ends a session or uses up a sign-in link; `false` when it was gone already (so of
    /// two concurrent uses of a link, one wins).
    async fn end_session(&self, token_hash: &str) -> StoreResult<bool>;

    /// Ends every session and sign-in link of a user except the one of `keep`.
    async fn end_sessions_of(&self, user_id: UserId, keep: &str) -> StoreResult<u64>;

    /// Forgets sessions and links whose absolute end is before `before`.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
