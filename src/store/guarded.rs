//! The store as the rest of snip sees it: every call under a timeout, through the store's
//! circuit breaker, timed into a latency histogram per operation; reads that fail because
//! the database is unreachable are retried with back-off (writes are not: they may have
//! been applied).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{
    ClickFact, ClickStats, ClickSums, ClickTotals, IdempotencyRecord, IdempotencySave, KeyRecord,
    LinkFields, LinkPage, LinkQuery, LinkRecord, LinkStore, NewKey, NewSession, PoolUsage,
    RedirectTarget, SessionRecord, StoreError, StoreResult, TagCount, UserRecord, UserStore,
};
use crate::domain::code::Code;
use crate::domain::user::{Email, UserDraft, UserId};
use crate::resilience::{Breaker, BreakerSettings, HistogramVec, full_jitter};

/// Why a call the open breaker refused failed.
pub const CIRCUIT_OPEN: &str = "circuit open";

/// How the reason begins when no connection to the database could be had within the
/// connect timeout. Such a read is not retried: the next try would wait as long again.
pub const NO_CONNECTION: &str = "no connection to the database";

/// Attempts of a read whose database is unreachable.
const READ_ATTEMPTS: u32 = 3;

/// What every store call goes through: shared by the link and user sides of one store.
pub struct Guard {
    /// The store's breaker.
    pub breaker: Breaker,
    /// Latency of store calls, by operation and outcome.
    pub latency: HistogramVec,
    timeout: Duration,
}

impl Guard {
    /// A guard with a per-call `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            breaker: Breaker::new("store", BreakerSettings::default()),
            latency: HistogramVec::default(),
            timeout,
        }
    }

    async fn run<T, F, Fut>(&self, op: &'static str, read: bool, call: F) -> StoreResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let attempts = if read { READ_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            let Some(permit) = self.breaker.allow() else {
                return Err(StoreError::Unavailable(CIRCUIT_OPEN.into()));
            };
            let started = Instant::now();
            let span = tracing::debug_span!("store", op);
            let result = match tokio::time::timeout(self.timeout, call().instrument(span)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ))),
            };
            let outcome = match &result {
                Ok(_) => "ok",
                Err(StoreError::Unavailable(_)) => "unavailable",
                Err(_) => "error",
            };
            self.latency.with(&[op, outcome]).observe(started.elapsed());
            match result {
                Err(StoreError::Unavailable(why)) => {
                    permit.failure();
                    attempt += 1;
                    if attempt >= attempts || why.starts_with(NO_CONNECTION) {
                        return Err(StoreError::Unavailable(why));
                    }
                    tokio::time::sleep(full_jitter(Duration::from_millis(25), attempt)).await;
                }
                // Answered, even if with an error of the request's own.
                other => {
                    permit.success();
                    return other;
                }
            }
        }
    }
}

/// A store behind a [`Guard`].
pub struct Guarded<S: ?Sized> {
    inner: Arc<S>,
    guard: Arc<Guard>,
}

impl<S: ?Sized> Guarded<S> {
    /// Puts `inner` behind `guard`.
    pub fn new(inner: Arc<S>, guard: Arc<Guard>) -> Self {
        Self { inner, guard }
    }
}

/// Implements a store trait for `Guarded<dyn Trait>` by sending each method through the
/// guard; `read` methods are retried when the database is unreachable.
macro_rules! guarded {
    ($trait:ident { $( $kind:ident $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )* }
        $($extra:item)*) => {
        #[async_trait::async_trait]
        impl $trait for Guarded<dyn $trait> {
            $($extra)*
            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    self.guard
                        .run(stringify!($name), guarded!(@read $kind), || {
                            self.inner.$name($($arg),*)
                        })
                        .await
                }
            )*
        }
    };
    (@read read) => { true };
    (@read write) => { false };
}

guarded!(LinkStore {
    write insert_link(link: &LinkRecord, idempotency: Option<&IdempotencySave>) -> ();
    write insert_links(links: &[LinkRecord]) -> Vec<StoreResult<()>>;
    read get_link(code: &Code) -> Option<LinkRecord>;
    read get_redirect(code: &Code) -> Option<RedirectTarget>;
    write consume_click(code: &Code) -> bool;
    write update_link(code: &Code, fields: &LinkFields, now: DateTime<Utc>) -> LinkRecord;
    write delete_link(code: &Code, now: DateTime<Utc>) -> ();
    write delete_links_of(owner_id: UserId, now: DateTime<Utc>) -> Vec<Code>;
    read list_links(query: &LinkQuery) -> LinkPage;
    read get_idempotency(user_id: UserId, key: &str, not_before: DateTime<Utc>)
        -> Option<IdempotencyRecord>;
    write purge_idempotency(before: DateTime<Utc>) -> u64;
    write apply_clicks(batch_id: &str, clicks: &[ClickFact]) -> usize;
    write apply_click_totals(batch_id: &str, totals: &ClickTotals) -> bool;
    read click_stats(code: &Code, from: DateTime<Utc>, to: DateTime<Utc>, bucket_ms: i64)
        -> ClickStats;
    read click_sums(codes: &[Code], from: DateTime<Utc>, to: DateTime<Utc>)
        -> HashMap<Code, ClickSums>;
    read click_series(codes: &[Code], from: DateTime<Utc>, to: DateTime<Utc>, bucket_ms: i64)
        -> HashMap<Code, Vec<(i64, i64, i64)>>;
    read click_dims(codes: &[Code], from: DateTime<Utc>, to: DateTime<Utc>)
        -> HashMap<Code, Vec<(String, String, i64)>>;
    read count_links(owners: &[UserId]) -> HashMap<UserId, u64>;
    read owner_tags(owners: &[UserId]) -> HashMap<UserId, Vec<TagCount>>;
    read owner_clicks(owner: UserId) -> i64;
    read daily_salt(day_ms: i64, candidate: &str) -> String;
    write ping() -> ();
}
    fn pool_usage(&self) -> Vec<PoolUsage> {
        self.inner.pool_usage()
    }
);

guarded!(UserStore {
    write bootstrap_admin(admin: &UserDraft, key: &NewKey, now: DateTime<Utc>) -> bool;
    write create_user(user: &UserDraft, now: DateTime<Utc>) -> UserRecord;
    read get_user(id: UserId) -> Option<UserRecord>;
    read get_users(ids: &[UserId]) -> Vec<UserRecord>;
    read find_user_by_email(email: &Email) -> Option<UserRecord>;
    read list_users(after: Option<UserId>, limit: u32) -> (Vec<UserRecord>, bool);
    read count_admins() -> u64;
    write update_user(id: UserId, user: &UserDraft, now: DateTime<Utc>) -> UserRecord;
    write delete_user(id: UserId, now: DateTime<Utc>) -> ();
    write create_key(key: &NewKey, now: DateTime<Utc>) -> KeyRecord;
    read list_keys(user_id: UserId) -> Vec<KeyRecord>;
    write revoke_key(user_id: UserId, key_id: i64, now: DateTime<Utc>) -> ();
    read authenticate(key_hash: &str) -> Option<(UserRecord, KeyRecord)>;
    read live_key_hashes() -> Vec<String>;
    write touch_key(key_id: i64, now: DateTime<Utc>) -> ();
    read password_hash(id: UserId) -> Option<String>;
    write set_password(id: UserId, hash: &str, now: DateTime<Utc>) -> ();
    write create_session(session: &NewSession, now: DateTime<Utc>) -> ();
    read session(token_hash: &str) -> Option<(UserRecord, SessionRecord)>;
    write touch_session(token_hash: &str, now: DateTime<Utc>) -> ();
    write end_session(token_hash: &str) -> bool;
    write end_sessions_of(user_id: UserId, keep: &str) -> u64;
    write purge_sessions(before: DateTime<Utc>) -> u64;
});
