//! The redirect cache: code → what a redirect needs. L1 is an in-process table in every
//! node (`l1.rs`); L2 (optional) is Redis, shared by all nodes, which also carries
//! invalidations so each node's L1 drops what another node changed.
//!
//! Reads are cache-aside (L1, then L2, then the store; concurrent misses for one code are
//! coalesced into one load). Unknown codes are cached too, briefly, so enumeration does not
//! reach the store. Writes go through [`RedirectCache::refresh`]: the store first, then L2
//! is rewritten and every L1 told. A failing Redis never fails a request: it is skipped,
//! counted and logged once per change of state.

pub mod l1;
pub mod redis;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::clicks::ClickSlot;
use crate::domain::code::Code;
use crate::store::{LinkStore, RedirectTarget, StoreError, StoreResult};

pub use self::l1::L1;
pub use self::redis::RedisCache;

/// A cached link: its target, and its code (which tells it from another code whose hash
/// it shares). It reads as the [`RedirectTarget`] it holds.
#[derive(Debug)]
pub struct CachedTarget {
    code: Box<str>,
    target: RedirectTarget,
    /// The number the click worker gave this link in the batch it is adding up, so that a
    /// click on a cached link costs no lookup of its code (see [`ClickSlot`]).
    click_slot: ClickSlot,
}

impl CachedTarget {
    /// `target`, cached under `code`.
    pub fn new(code: &str, target: RedirectTarget) -> Self {
        Self {
            code: code.into(),
            target,
            click_slot: ClickSlot::default(),
        }
    }

    /// The code it is cached under.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The click worker's note on this link (its meaning is the worker's).
    pub fn click_slot(&self) -> &ClickSlot {
        &self.click_slot
    }
}

#[cfg(test)]
impl CachedTarget {
    /// A plain link (permanent redirect, no gate) from `code` to
    /// `https://example.com/{code}`, for tests.
    pub(crate) fn plain(code: &str) -> Self {
        Self::new(
            code,
            RedirectTarget::new(
                crate::domain::target_url::TargetUrl::from_trusted(format!(
                    "https://example.com/{code}"
                )),
                crate::domain::link::RedirectStatus::Permanent,
                false,
                crate::store::Gate::default(),
            ),
        )
    }
}

/// Two cached links are equal when code and target are (the worker's note aside).
impl PartialEq for CachedTarget {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.target == other.target
    }
}

impl Eq for CachedTarget {}

impl Deref for CachedTarget {
    type Target = RedirectTarget;

    fn deref(&self) -> &RedirectTarget {
        &self.target
    }
}

/// A cached lookup: the link, or the fact that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The code exists (possibly deleted: then it answers 410).
    Found(Arc<CachedTarget>),
    /// No link has this code.
    Missing,
}

impl Cached {
    fn into_option(self) -> Option<Arc<CachedTarget>> {
        match self {
            Cached::Found(t) => Some(t),
            Cached::Missing => None,
        }
    }
}

/// Sizes and lifetimes of cache entries.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Most entries in L1.
    pub capacity: u64,
    /// How long a found link stays cached (bounds staleness if an invalidation is lost).
    pub ttl: Duration,
    /// How long an unknown code stays cached.
    pub negative_ttl: Duration,
    /// How long past `ttl` a found link is kept, to answer while the store is down
    /// (stale-if-error).
    pub stale_if_error: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(3600),
        }
    }
}

impl CacheSettings {
    fn ttl_of(&self, value: &Cached) -> Duration {
        match value {
            Cached::Found(_) => self.ttl,
            Cached::Missing => self.negative_ttl,
        }
    }
}

/// Counters of the cache, per level.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// L1 hits on a found link.
    pub l1_hits: AtomicU64,
    /// L1 hits on a cached unknown code.
    pub l1_negative_hits: AtomicU64,
    /// L1 misses.
    pub l1_misses: AtomicU64,
    /// L2 hits.
    pub l2_hits: AtomicU64,
    /// L2 misses.
    pub l2_misses: AtomicU64,
    /// L2 calls that failed or timed out.
    pub l2_errors: AtomicU64,
    /// Reads of the store after misses (concurrent misses of one code share one).
    pub store_loads: AtomicU64,
    /// Invalidations applied to this node's L1.
    pub invalidations: AtomicU64,
    /// Redirects answered from an expired entry because the store could not be reached.
    pub stale_served: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The outcome of one load, shared by every request that waited for it.
type Loaded = Result<Cached, Arc<StoreError>>;

/// One request's share in a load of a code. When the last request waiting leaves, or the
/// load is done, the load is taken off the map, also when its request gave up (was
/// dropped) before the load ended.
struct Flight<'a> {
    cache: &'a RedirectCache,
    code: &'a Code,
    cell: Option<Arc<OnceCell<Loaded>>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut loading = self.cache.loading();
        let Some(current) = loading.get(self.code) else {
            return;
        };
        if !Arc::ptr_eq(current, &cell) {
            return;
        }
        let done = cell.initialized();
        // Shares are only taken and dropped under the lock, so the count is exact here.
        drop(cell);
        if done || Arc::strong_count(current) == 1 {
            loading.remove(self.code);
        }
    }
}

/// The two-level redirect cache in front of the link store.
pub struct RedirectCache {
    l1: L1,
    l2: Option<Arc<RedisCache>>,
    store: Arc<dyn LinkStore>,
    settings: CacheSettings,
    /// Loads in flight, one per code: concurrent misses of a code wait for the same one.
    loading: Mutex<HashMap<Code, Arc<OnceCell<Loaded>>>>,
}

impl RedirectCache {
    /// A cache over `store`, with Redis as L2 when given.
    pub fn new(
        store: Arc<dyn LinkStore>,
        l2: Option<Arc<RedisCache>>,
        settings: CacheSettings,
    ) -> Self {
        Self {
            l1: L1::new(settings.capacity, settings.stale_if_error, Arc::default()),
            l2,
            store,
            settings,
            loading: Mutex::default(),
        }
    }

    /// This node's L1 (for the invalidation listener).
    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// Entries in L1.
    pub fn l1_len(&self) -> u64 {
        self.l1.len()
    }

    /// Loads of the store (or L2) in flight.
    pub fn loads_in_flight(&self) -> usize {
        self.loading().len()
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        self.l1.stats()
    }

    fn count(&self, c: impl Fn(&CacheStats) -> &AtomicU64) {
        bump(c(self.l1.stats()));
    }

    /// What a redirect of `code` needs; `None` when no link has the code.
    pub async fn get(&self, code: &Code) -> StoreResult<Option<Arc<CachedTarget>>> {
        match self.l1.lookup(code.as_str(), self.l1.now()) {
            Some((value, true)) => {
                match value {
                    Cached::Found(_) => self.count(|s| &s.l1_hits),
                    Cached::Missing => self.count(|s| &s.l1_negative_hits),
                }
                return Ok(value.into_option());
            }
            Some((Cached::Found(stale), false)) => return self.revalidate(code, stale).await,
            _ => {}
        }
        self.count(|s| &s.l1_misses);
        let loaded = self.load_once(code).await.map_err(|e| match &*e {
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            other => StoreError::Other(anyhow::anyhow!("loading {code}: {other}")),
        })?;
        Ok(loaded.into_option())
    }

    /// Loads `code` into L1, or waits for the load another request already started.
    async fn load_once(&self, code: &Code) -> Loaded {
        let flight = Flight {
            cache: self,
            code,
            cell: Some(self.loading().entry(code.clone()).or_default().clone()),
        };
        // (The share is only taken back when the flight ends; a load without one is a plain
        // load.)
        let Some(cell) = flight.cell.as_deref() else {
            return self.load(code).await.map_err(Arc::new);
        };
        cell.get_or_init(|| async {
            let generation = self.l1.generation();
            let value = self.load(code).await.map_err(Arc::new)?;
            let fresh_until = self.l1.later(self.settings.ttl_of(&value));
            self.l1
                .insert(code.as_str(), value.clone(), fresh_until, Some(generation));
            Ok(value)
        })
        .await
        .clone()
    }

    fn loading(&self) -> std::sync::MutexGuard<'_, HashMap<Code, Arc<OnceCell<Loaded>>>> {
        // The map is only ever changed by single inserts and removals: usable after a panic.
        self.loading.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A found link that L1 holds fresh, without loading anything or counting the lookup
    /// (the caller counts a hit with [`Self::count_hit`] when it uses the answer; otherwise it
    /// asks [`Self::get`], which counts).
    pub fn peek(&self, code: &Code) -> Option<Arc<CachedTarget>> {
        match self.l1.lookup(code.as_str(), self.l1.now())? {
            (Cached::Found(t), true) => Some(t),
            _ => None,
        }
    }

    /// Whether L1 holds a fresh answer for `code`, found or missing: then [`Self::get`]
    /// asks neither Redis nor the store.
    pub fn knows(&self, code: &Code) -> bool {
        matches!(
            self.l1.lookup(code.as_str(), self.l1.now()),
            Some((_, true))
        )
    }

    /// Counts an L1 hit on a found link that [`Self::peek`] answered.
    pub fn count_hit(&self) {
        self.count(|s| &s.l1_hits);
    }

    /// An expired entry of a found link: load it again; if the store cannot be reached,
    /// answer with the stale entry (stale-if-error). While one request reloads, others are
    /// answered from the stale entry for a second instead of loading too.
    async fn revalidate(
        &self,
        code: &Code,
        stale: Arc<CachedTarget>,
    ) -> StoreResult<Option<Arc<CachedTarget>>> {
        self.count(|s| &s.l1_misses);
        let generation = self.l1.generation();
        let meanwhile = self.l1.later(Duration::from_secs(1));
        self.l1
            .insert(code.as_str(), Cached::Found(stale.clone()), meanwhile, None);
        match self.load(code).await {
            Ok(value) => {
                let fresh_until = self.l1.later(self.settings.ttl_of(&value));
                self.l1
                    .insert(code.as_str(), value.clone(), fresh_until, Some(generation));
                Ok(value.into_option())
            }
            Err(StoreError::Unavailable(why)) => {
                tracing::debug!(%code, reason = %why, "store unavailable: serving a stale link");
                self.count(|s| &s.stale_served);
                Ok(Some(stale))
            }
            Err(e) => Err(e),
        }
    }

    async fn load(&self, code: &Code) -> StoreResult<Cached> {
        let mut l2_up = false;
        if let Some(l2) = &self.l2 {
            match l2.get(code).await {
                Ok(Some(hit)) => {
                    self.count(|s| &s.l2_hits);
                    return Ok(hit);
                }
                Ok(None) => {
                    self.count(|s| &s.l2_misses);
                    l2_up = true;
                }
                Err(()) => self.count(|s| &s.l2_errors),
            }
        }
        self.count(|s| &s.store_loads);
        let value = self.read_store(code).await?;
        if let (Some(l2), true) = (&self.l2, l2_up)
            && l2
                .set(code, &value, self.settings.ttl_of(&value))
                .await
                .is_err()
        {
            self.count(|s| &s.l2_errors);
        }
        Ok(value)
    }

    async fn read_store(&self, code: &Code) -> StoreResult<Cached> {
        Ok(match self.store.get_redirect(code).await? {
            Some(t) => Cached::Found(Arc::new(CachedTarget::new(code.as_str(), t))),
            None => Cached::Missing,
        })
    }

    /// After a write of `code` in the store: rewrites L2 from the store (write-through),
    /// drops the code from this node's L1 and tells the other nodes to drop it too.
    pub async fn refresh(&self, code: &Code) {
        self.l1.invalidate(code);
        let Some(l2) = &self.l2 else { return };
        let fresh = match self.read_store(code).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, %code, "re-reading a link for the cache failed");
                None
            }
        };
        let written = match &fresh {
            Some(v) => l2.set(code, v, self.settings.ttl_of(v)).await,
            None => l2.delete(code).await,
        };
        if written.is_err() || l2.publish_invalidation(code).await.is_err() {
            self.count(|s| &s.l2_errors);
        }
    }
}
