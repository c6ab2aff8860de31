//! The redirect cache: code → what a redirect needs. L1 is an in-process moka cache in
//! every node; L2 (optional) is Redis, shared by all nodes, which also carries
//! invalidations so each node's L1 drops what another node changed.
//!
//! Reads are cache-aside (L1, then L2, then the store; concurrent misses for one code are
//! coalesced into one load). Unknown codes are cached too, briefly, so enumeration does not
//! reach the store. Writes go through [`RedirectCache::refresh`]: the store first, then L2
//! is rewritten and every L1 told. A failing Redis never fails a request: it is skipped,
//! counted and logged once per change of state.

pub mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::domain::code::Code;
use crate::store::{LinkStore, RedirectTarget, StoreError, StoreResult};

pub use self::redis::RedisCache;

/// A cached lookup: the link, or the fact that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The code exists (possibly deleted: then it answers 410).
    Found(Arc<RedirectTarget>),
    /// No link has this code.
    Missing,
}

impl Cached {
    fn into_option(self) -> Option<Arc<RedirectTarget>> {
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

/// An L1 entry: the value, and until when it is fresh. A found link stays in L1 for
/// `stale_if_error` past that, to answer while the store is down.
#[derive(Debug, Clone)]
pub struct Entry {
    value: Cached,
    fresh_until: Instant,
}

struct PerValueTtl(CacheSettings);

impl PerValueTtl {
    fn keep(&self, value: &Cached) -> Duration {
        match value {
            Cached::Found(_) => self.0.ttl + self.0.stale_if_error,
            Cached::Missing => self.0.negative_ttl,
        }
    }
}

impl moka::Expiry<Code, Entry> for PerValueTtl {
    fn expire_after_create(&self, _: &Code, e: &Entry, _: Instant) -> Option<Duration> {
        Some(self.keep(&e.value))
    }

    fn expire_after_update(
        &self,
        _: &Code,
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.keep(&e.value))
    }
}

/// This node's L1, shared with the task that applies invalidations from other nodes.
#[derive(Clone)]
pub struct L1 {
    entries: moka::future::Cache<Code, Entry>,
    /// Bumped by every invalidation; a load that raced with one is not kept.
    generation: Arc<AtomicU64>,
    stats: Arc<CacheStats>,
    /// Whether invalidations from other nodes are being received.
    listening: Arc<AtomicBool>,
}

impl L1 {
    /// Drops one code.
    pub async fn invalidate(&self, code: &Code) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(code).await;
        bump(&self.stats.invalidations);
    }

    /// Drops everything (after invalidations may have been missed).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// Records whether other nodes' invalidations are being received.
    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }

    /// Whether other nodes' invalidations are being received (always false without L2).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// The two-level redirect cache in front of the link store.
pub struct RedirectCache {
    l1: L1,
    l2: Option<Arc<RedisCache>>,
    store: Arc<dyn LinkStore>,
    settings: CacheSettings,
}

impl RedirectCache {
    /// A cache over `store`, with Redis as L2 when given.
    pub fn new(
        store: Arc<dyn LinkStore>,
        l2: Option<Arc<RedisCache>>,
        settings: CacheSettings,
    ) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(PerValueTtl(settings))
            .build();
        Self {
            l1: L1 {
                entries,
                generation: Arc::default(),
                stats: Arc::default(),
                listening: Arc::default(),
            },
            l2,
            store,
            settings,
        }
    }

    /// This node's L1 (for the invalidation listener).
    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// Entries in L1 (approximate while writes are pending).
    pub fn l1_len(&self) -> u64 {
        self.l1.entries.entry_count()
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        &self.l1.stats
    }

    /// What a redirect of `code` needs; `None` when no link has the code.
    pub async fn get(&self, code: &Code) -> StoreResult<Option<Arc<RedirectTarget>>> {
        if let Some(hit) = self.l1.entries.get(code).await {
            if Instant::now() < hit.fresh_until {
                match hit.value {
                    Cached::Found(_) => bump(&self.l1.stats.l1_hits),
                    Cached::Missing => bump(&self.l1.stats.l1_negative_hits),
                }
                return Ok(hit.value.into_option());
            }
            return self.revalidate(code, hit).await;
        }
        bump(&self.l1.stats.l1_misses);
        let generation = self.l1.generation.load(Ordering::Acquire);
        let loaded = self
            .l1
            .entries
            .try_get_with_by_ref(code, async {
                let value = self.load(code).await?;
                Ok::<_, StoreError>(self.entry(value))
            })
            .await
            .map_err(|e| match &*e {
                StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
                other => StoreError::Other(anyhow::anyhow!("loading {code}: {other}")),
            })?;
        if self.l1.generation.load(Ordering::Acquire) != generation {
            // An invalidation arrived while we loaded: what we loaded may predate it.
            self.l1.entries.invalidate(code).await;
        }
        Ok(loaded.value.into_option())
    }

    /// A found link that L1 holds fresh, without loading anything or counting the lookup
    /// (the caller counts a hit with [`Self::count_hit`] when it uses the answer; otherwise it
    /// asks [`Self::get`], which counts).
    pub async fn peek(&self, code: &Code) -> Option<Arc<RedirectTarget>> {
        let hit = self.l1.entries.get(code).await?;
        match hit.value {
            Cached::Found(t) if Instant::now() < hit.fresh_until => Some(t),
            _ => None,
        }
    }

    /// Counts an L1 hit on a found link that [`Self::peek`] answered.
    pub fn count_hit(&self) {
        bump(&self.l1.stats.l1_hits);
    }

    fn entry(&self, value: Cached) -> Entry {
        let fresh_until = Instant::now() + self.settings.ttl_of(&value);
        Entry { value, fresh_until }
    }

    /// An expired entry of a found link: load it again; if the store cannot be reached,
    /// answer with the stale entry (stale-if-error). While one request reloads, others are
    /// answered from the stale entry for a second instead of loading too.
    async fn revalidate(
        &self,
        code: &Code,
        stale: Entry,
    ) -> StoreResult<Option<Arc<RedirectTarget>>> {
        bump(&self.l1.stats.l1_misses);
        let generation = self.l1.generation.load(Ordering::Acquire);
        self.l1
            .entries
            .insert(
                code.clone(),
                Entry {
                    value: stale.value.clone(),
                    fresh_until: Instant::now() + Duration::from_secs(1),
                },
            )
            .await;
        match self.load(code).await {
            Ok(value) => {
                if self.l1.generation.load(Ordering::Acquire) == generation {
                    self.l1
                        .entries
                        .insert(code.clone(), self.entry(value.clone()))
                        .await;
                } else {
                    self.l1.entries.invalidate(code).await;
                }
                Ok(value.into_option())
            }
            Err(StoreError::Unavailable(why)) => {
                tracing::debug!(%code, reason = %why, "store unavailable: serving a stale link");
                bump(&self.l1.stats.stale_served);
                Ok(stale.value.into_option())
            }
            Err(e) => Err(e),
        }
    }

    async fn load(&self, code: &Code) -> StoreResult<Cached> {
        let mut l2_up = false;
        if let Some(l2) = &self.l2 {
            match l2.get(code).await {
                Ok(Some(hit)) => {
                    bump(&self.l1.stats.l2_hits);
                    return Ok(hit);
                }
                Ok(None) => {
                    bump(&self.l1.stats.l2_misses);
                    l2_up = true;
                }
                Err(()) => bump(&self.l1.stats.l2_errors),
            }
        }
        bump(&self.l1.stats.store_loads);
        let value = match self.store.get_redirect(code).await? {
            Some(t) => Cached::Found(Arc::new(t)),
            None => Cached::Missing,
        };
        if let (Some(l2), true) = (&self.l2, l2_up)
            && l2
                .set(code, &value, self.settings.ttl_of(&value))
                .await
                .is_err()
        {
            bump(&self.l1.stats.l2_errors);
        }
        Ok(value)
    }

    /// After a write of `code` in the store: rewrites L2 from the store (write-through),
    /// drops the code from this node's L1 and tells the other nodes to drop it too.
    pub async fn refresh(&self, code: &Code) {
        self.l1.invalidate(code).await;
        let Some(l2) = &self.l2 else { return };
        let fresh = match self.store.get_redirect(code).await {
            Ok(Some(t)) => Some(Cached::Found(Arc::new(t))),
            Ok(None) => Some(Cached::Missing),
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
            bump(&self.l1.stats.l2_errors);
        }
    }
}
