//! L1: this node's in-process cache of redirect targets, built for one job. A general
//! cache crate spent ≈ 480 bytes of bookkeeping per link (access-order queues, timer wheel
//! nodes, a frequency sketch) and a channel send on every read; this table spends a
//! 24-byte slot and the entry itself.
//!
//! - Shards (up to 64, by the hash's top bits), each an open-addressing table with linear
//!   probing behind an `RwLock`: a read takes the read lock, probes a few adjacent slots
//!   and clones one `Arc`.
//! - Eviction is CLOCK (second chance): a read sets the slot's `referenced` bit; when a shard
//!   is full, a hand sweeps its slots, clearing bits, and evicts the first entry that was
//!   not read since a hand last passed (or that has expired). The sweep starts where the
//!   new entry goes, not where the last one stopped: a hand going round would empty the
//!   slots behind it and leave those ahead of it nearly full, where linear probing's runs
//!   grow long.
//! - Time is kept in tenths of a second since the cache was made, in 32 bits (13 years;
//!   past that, nothing is fresh and every lookup reloads). An entry is fresh until its
//!   stamp; a found link is then kept `stale_if_error` longer (to answer while the store is
//!   down), an unknown code not at all. Expired entries are not swept by a timer: lookups
//!   ignore them and a sweep reclaims them first.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::{CacheStats, Cached, CachedTarget, bump};
use crate::domain::code::Code;

/// Links per shard below which one more shard is not worth its lock.
const SHARD_MIN: u64 = 4096;
/// Most shards (a power of two).
const SHARDS_MAX: u64 = 64;
/// Highest share of a table's slots in use, as a fraction: past 3/4, linear probing's
/// misses scan long runs.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;
/// Slots of a new shard.
const SLOTS_MIN: usize = 16;
/// The bits of a slot's `tag` that hold the hash; the top one is `REFERENCED`.
const TAG_MASK: u32 = 0x7fff_ffff;
/// Set by a read; cleared by the CLOCK hand.
const REFERENCED: u32 = 0x8000_0000;
/// Milliseconds in a tick, the cache's unit of time.
const TICK_MS: u128 = 100;

/// Time in the cache: ticks since it was made.
type Tick = u32;

fn ticks(d: Duration) -> Tick {
    Tick::try_from(d.as_millis().div_ceil(TICK_MS)).unwrap_or(Tick::MAX)
}

fn tag_of(hash: u64) -> u32 {
    hash as u32 & TAG_MASK
}

/// A table entry: a found link, or a code known to be unknown. Each variant is one pointer,
/// so a slot is 24 bytes.
enum Entry {
    Found(Arc<CachedTarget>),
    /// An unknown code (boxed twice to keep the variant one pointer wide: these are few
    /// and short-lived).
    Missing(Box<Box<str>>),
}

impl Entry {
    fn new(code: &str, value: Cached) -> Self {
        match value {
            Cached::Found(t) => Entry::Found(t),
            Cached::Missing => Entry::Missing(Box::new(code.into())),
        }
    }

    fn code(&self) -> &str {
        match self {
            Entry::Found(t) => t.code(),
            Entry::Missing(code) => code,
        }
    }

    fn cached(&self) -> Cached {
        match self {
            Entry::Found(t) => Cached::Found(t.clone()),
            Entry::Missing(_) => Cached::Missing,
        }
    }
}

#[derive(Default)]
struct Slot {
    /// The low 31 bits of the code's hash (where the slot's probe starts, and a cheap first
    /// comparison) and, on top, `REFERENCED`: read since the hand last passed.
    tag: AtomicU32,
    /// Fresh until this tick.
    fresh_until: Tick,
    entry: Option<Entry>,
}

impl Slot {
    fn tag(&self) -> u32 {
        self.tag.load(Ordering::Relaxed) & TAG_MASK
    }
}

/// One shard: slots in a ring, probed linearly from a code's home slot.
struct Table {
    slots: Vec<Slot>,
    len: usize,
    /// Most entries; one more evicts.
    capacity: usize,
    /// How long past `fresh_until` a found link is kept.
    stale: Tick,
}

impl Table {
    fn new(capacity: usize, stale: Tick) -> Self {
        let mut t = Self {
            slots: Vec::new(),
            len: 0,
            capacity,
            stale,
        };
        t.slots
            .resize_with(SLOTS_MIN.min(t.max_slots()), Slot::default);
        t
    }

    /// Slots when full: `capacity` entries at most 3/4 of them, and always one empty slot
    /// so that every probe ends.
    fn max_slots(&self) -> usize {
        (self.capacity * LOAD_DEN).div_ceil(LOAD_NUM) + 1
    }

    fn home(&self, tag: u32) -> usize {
        // Multiply-shift maps the tag onto any table length, not only powers of two.
        ((u64::from(tag) * self.slots.len() as u64) >> 31) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    fn find(&self, tag: u32, code: &str) -> Option<usize> {
        let mut i = self.home(tag);
        loop {
            let slot = &self.slots[i];
            let entry = slot.entry.as_ref()?;
            if slot.tag() == tag && entry.code() == code {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    fn keep_until(&self, slot: &Slot) -> Tick {
        match slot.entry {
            Some(Entry::Found(_)) => slot.fresh_until.saturating_add(self.stale),
            _ => slot.fresh_until,
        }
    }

    fn lookup(&self, tag: u32, code: &str, now: Tick) -> Option<(Cached, bool)> {
        let slot = &self.slots[self.find(tag, code)?];
        if now >= self.keep_until(slot) {
            return None;
        }
        // Only write the bit when it changes: a shared cache line stays shared.
        if slot.tag.load(Ordering::Relaxed) & REFERENCED == 0 {
            slot.tag.fetch_or(REFERENCED, Ordering::Relaxed);
        }
        Some((slot.entry.as_ref()?.cached(), now < slot.fresh_until))
    }

    fn insert(&mut self, tag: u32, entry: Entry, fresh_until: Tick, now: Tick) {
        if self.capacity == 0 {
            return;
        }
        if let Some(i) = self.find(tag, entry.code()) {
            let slot = &mut self.slots[i];
            slot.entry = Some(entry);
            slot.fresh_until = fresh_until;
            return;
        }
        if self.len >= self.capacity {
            let start = self.home(tag);
            self.evict_one(now, start);
        }
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow();
        }
        let mut i = self.home(tag);
        while self.slots[i].entry.is_some() {
            i = self.next(i);
        }
        self.slots[i] = Slot {
            tag: AtomicU32::new(tag),
            fresh_until,
            entry: Some(entry),
        };
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).min(self.max_slots());
        if size <= self.slots.len() {
            return;
        }
        let mut old = std::mem::take(&mut self.slots);
        self.slots.resize_with(size, Slot::default);
        for slot in &mut old {
            if slot.entry.is_none() {
                continue;
            }
            let mut i = self.home(slot.tag());
            while self.slots[i].entry.is_some() {
                i = self.next(i);
            }
            self.slots[i] = std::mem::take(slot);
        }
    }

    /// Empties slot `i`, then shifts later slots of the same run back so that no probe
    /// meets a hole before its entry.
    fn remove_at(&mut self, i: usize) {
        self.slots[i] = Slot::default();
        self.len -= 1;
        let n = self.slots.len();
        // How far `to` lies after `from`, going round (no division: this runs per slot).
        let ahead = |from: usize, to: usize| if to >= from { to - from } else { to + n - from };
        let mut hole = i;
        let mut j = self.next(i);
        while self.slots[j].entry.is_some() {
            let home = self.home(self.slots[j].tag());
            // The entry at `j` may move to the hole unless its home lies after the hole
            // (cyclically, up to `j`): then the hole is before where its probe starts.
            let home_after_hole = ahead(hole, home);
            if home_after_hole == 0 || home_after_hole > ahead(hole, j) {
                self.slots.swap(hole, j);
                hole = j;
            }
            j = self.next(j);
        }
    }

    fn remove(&mut self, tag: u32, code: &str) {
        if let Some(i) = self.find(tag, code) {
            self.remove_at(i);
        }
    }

    /// CLOCK from slot `start`: evicts the first entry past its keep time, or not read
    /// since a hand last passed, clearing the bits of those it passes. Two turns at most:
    /// the first clears every bit.
    fn evict_one(&mut self, now: Tick, start: usize) {
        let mut i = start;
        for _ in 0..=2 * self.slots.len() {
            let keep_until = self.keep_until(&self.slots[i]);
            let slot = &mut self.slots[i];
            if slot.entry.is_some() {
                if now >= keep_until || *slot.tag.get_mut() & REFERENCED == 0 {
                    self.remove_at(i);
                    return;
                }
                *slot.tag.get_mut() &= TAG_MASK;
            }
            i = self.next(i);
        }
    }

    fn clear(&mut self) {
        let capacity = self.capacity;
        *self = Self::new(capacity, self.stale);
    }
}

struct Shared {
    shards: Box<[RwLock<Table>]>,
    /// log2 of the shard count.
    shard_bits: u32,
    epoch: Instant,
    /// Bumped by every invalidation; a load that raced with one is not kept.
    generation: AtomicU64,
    stats: Arc<CacheStats>,
    /// Whether invalidations from other nodes are being received.
    listening: AtomicBool,
}

/// This node's L1, shared with the task that applies invalidations from other nodes.
#[derive(Clone)]
pub struct L1 {
    shared: Arc<Shared>,
}

fn hash(code: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(code.as_bytes())
}

impl L1 {
    /// An L1 of at most about `capacity` entries (each shard holds its share, rounded up).
    pub(super) fn new(capacity: u64, stale_if_error: Duration, stats: Arc<CacheStats>) -> Self {
        let shards = (capacity / SHARD_MIN).clamp(1, SHARDS_MAX);
        let shard_bits = shards.ilog2();
        let shards = 1u64 << shard_bits;
        let per_shard = usize::try_from(capacity.div_ceil(shards)).unwrap_or(usize::MAX);
        Self {
            shared: Arc::new(Shared {
                shards: (0..shards)
                    .map(|_| RwLock::new(Table::new(per_shard, ticks(stale_if_error))))
                    .collect(),
                shard_bits,
                epoch: Instant::now(),
                generation: AtomicU64::new(0),
                stats,
                listening: AtomicBool::new(false),
            }),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Table> {
        let i = hash.checked_shr(64 - self.shared.shard_bits).unwrap_or(0);
        &self.shared.shards[i as usize]
    }

    fn read(&self, hash: u64) -> RwLockReadGuard<'_, Table> {
        // A panic cannot leave a table half-changed in a way reads could trip on (every
        // change is a slot write or a swap), so a poisoned lock is used as it is.
        self.shard(hash).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, hash: u64) -> RwLockWriteGuard<'_, Table> {
        self.shard(hash).write().unwrap_or_else(|e| e.into_inner())
    }

    /// Now, in the cache's ticks.
    pub(super) fn now(&self) -> Tick {
        Tick::try_from(self.shared.epoch.elapsed().as_millis() / TICK_MS).unwrap_or(Tick::MAX)
    }

    /// The time `after` from now, in the cache's ticks.
    pub(super) fn later(&self, after: Duration) -> Tick {
        self.now().saturating_add(ticks(after))
    }

    /// The value held for `code` and whether it is fresh; `None` when nothing is held or
    /// what was is past keeping. Marks the entry as read.
    pub(super) fn lookup(&self, code: &str, now: Tick) -> Option<(Cached, bool)> {
        let h = hash(code);
        self.read(h).lookup(tag_of(h), code, now)
    }

    /// Holds `value` for `code`, fresh until `fresh_until`. With `if_generation`, only
    /// when no invalidation came since that generation was read; otherwise `code` is
    /// dropped instead, as the invalidation would have dropped it.
    pub(super) fn insert(
        &self,
        code: &str,
        value: Cached,
        fresh_until: Tick,
        if_generation: Option<u64>,
    ) {
        let h = hash(code);
        let now = self.now();
        let mut table = self.write(h);
        if if_generation.is_some_and(|g| g != self.generation()) {
            table.remove(tag_of(h), code);
            return;
        }
        table.insert(tag_of(h), Entry::new(code, value), fresh_until, now);
    }

    /// The invalidation generation (read before a load; see [`Self::insert`]).
    pub(super) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Drops one code.
    pub fn invalidate(&self, code: &Code) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        let h = hash(code.as_str());
        self.write(h).remove(tag_of(h), code.as_str());
        bump(&self.shared.stats.invalidations);
    }

    /// Drops everything (after invalidations may have been missed).
    pub fn invalidate_all(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shared.shards {
            shard.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Entries held (found links and unknown codes, expired ones not yet reclaimed too).
    pub fn len(&self) -> u64 {
        self.shared
            .shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len as u64)
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub(super) fn stats(&self) -> &CacheStats {
        &self.shared.stats
    }

    /// Records whether other nodes' invalidations are being received.
    pub fn set_listening(&self, on: bool) {
        self.shared.listening.store(on, Ordering::Release);
    }

    /// Whether other nodes' invalidations are being received (always false without L2).
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(code: &str) -> Cached {
        Cached::Found(Arc::new(CachedTarget::plain(code)))
    }

    fn url_of(value: Option<(Cached, bool)>) -> Option<String> {
        match value? {
            (Cached::Found(t), _) => Some(t.url.as_str().to_owned()),
            (Cached::Missing, _) => Some("missing".into()),
        }
    }

    const LONG: Tick = Tick::MAX / 2;

    #[test]
    fn a_slot_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
    }

    #[test]
    fn codes_sharing_a_tag_are_told_apart_by_their_text() {
        // Every code forced onto one tag, so each probe meets the others first.
        let mut t = Table::new(100, 0);
        for i in 0..50 {
            let code = format!("c{i}");
            t.insert(7, Entry::new(&code, found(&code)), LONG, 0);
        }
        for i in 0..50 {
            let code = format!("c{i}");
            let want = format!("https://example.com/{code}");
            assert_eq!(url_of(t.lookup(7, &code, 0)), Some(want));
        }
        assert_eq!(url_of(t.lookup(7, "c50", 0)), None);
        for i in (0..50).step_by(2) {
            t.remove(7, &format!("c{i}"));
        }
        for i in 0..50 {
            let held = t.lookup(7, &format!("c{i}"), 0).is_some();
            assert_eq!(held, i % 2 == 1, "c{i}");
        }
        assert_eq!(t.len, 25);
    }

    #[test]
    fn a_full_shard_evicts_what_was_not_read_since_a_hand_passed() {
        let mut t = Table::new(4, 0);
        for code in ["a1", "b2", "c3", "d4"] {
            t.insert(tag_of(hash(code)), Entry::new(code, found(code)), LONG, 0);
        }
        // Everything but c3 is read: the hand clears those bits and takes c3.
        for code in ["a1", "b2", "d4"] {
            assert!(t.lookup(tag_of(hash(code)), code, 0).is_some());
        }
        t.insert(tag_of(hash("e5")), Entry::new("e5", found("e5")), LONG, 0);
        assert_eq!(t.len, 4);
        assert!(t.lookup(tag_of(hash("c3")), "c3", 0).is_none());
        for code in ["a1", "b2", "d4", "e5"] {
            assert!(t.lookup(tag_of(hash(code)), code, 0).is_some(), "{code}");
        }
    }

    #[test]
    fn an_expired_entry_is_evicted_although_it_was_read() {
        let mut t = Table::new(2, 0);
        t.insert(tag_of(hash("old")), Entry::new("old", found("old")), 10, 0);
        t.insert(
            tag_of(hash("new")),
            Entry::new("new", found("new")),
            LONG,
            0,
        );
        assert!(t.lookup(tag_of(hash("old")), "old", 5).is_some());
        assert!(t.lookup(tag_of(hash("new")), "new", 5).is_some());
        // At 20, "old" is past keeping although it was read; "new" was read and is live.
        t.insert(tag_of(hash("x")), Entry::new("x", found("x")), LONG, 20);
        assert!(t.lookup(tag_of(hash("new")), "new", 20).is_some());
        assert!(t.lookup(tag_of(hash("x")), "x", 20).is_some());
        assert_eq!(t.len, 2);
    }

    #[test]
    fn found_links_are_kept_stale_and_unknown_codes_are_not() {
        let mut t = Table::new(10, 100);
        t.insert(
            tag_of(hash("link")),
            Entry::new("link", found("link")),
            50,
            0,
        );
        t.insert(
            tag_of(hash("none")),
            Entry::new("none", Cached::Missing),
            50,
            0,
        );
        let fresh = |t: &Table, code: &str, now| t.lookup(tag_of(hash(code)), code, now);
        assert!(matches!(fresh(&t, "link", 49), Some((_, true))));
        assert!(matches!(
            fresh(&t, "link", 50),
            Some((Cached::Found(_), false))
        ));
        assert!(matches!(fresh(&t, "link", 149), Some((_, false))));
        assert!(fresh(&t, "link", 150).is_none());
        assert!(matches!(
            fresh(&t, "none", 49),
            Some((Cached::Missing, true))
        ));
        assert!(fresh(&t, "none", 50).is_none());
    }

    #[test]
    fn a_capacity_of_zero_holds_nothing() {
        let l1 = L1::new(0, Duration::ZERO, Arc::default());
        l1.insert("abc", found("abc"), LONG, None);
        assert!(l1.lookup("abc", 0).is_none());
        assert_eq!(l1.len(), 0);
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let l1 = L1::new(100, Duration::ZERO, Arc::default());
        let code = Code::parse_alias("raced").unwrap();
        l1.insert("raced", found("raced"), LONG, None);
        let before = l1.generation();
        l1.invalidate(&code);
        l1.insert("raced", found("raced"), LONG, Some(before));
        assert!(l1.lookup("raced", 0).is_none());
        l1.insert("raced", found("raced"), LONG, Some(l1.generation()));
        assert!(l1.lookup("raced", 0).is_some());
        l1.invalidate_all();
        assert!(l1.is_empty());
    }

    #[test]
    fn under_concurrent_churn_a_code_only_ever_answers_with_its_own_target() {
        // A small L1 (constant eviction) shared by threads that insert, read, drop and
        // empty it at once: whatever a read finds must be the code's own entry.
        let l1 = L1::new(300, Duration::ZERO, Arc::default());
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let l1 = &l1;
                scope.spawn(move || {
                    let mut x = t.wrapping_mul(2_654_435_761) | 1;
                    for i in 0..40_000u32 {
                        // xorshift: a cheap spread of codes and operations per thread.
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let code = format!("c{:03}", x % 1_000);
                        match x % 16 {
                            0 => l1.invalidate(&Code::parse_alias(&code).unwrap()),
                            1 if i % 5_000 == 0 => l1.invalidate_all(),
                            2..=6 => l1.insert(&code, found(&code), LONG, None),
                            _ => {
                                if let Some((Cached::Found(t), _)) = l1.lookup(&code, 0) {
                                    assert_eq!(t.code(), code);
                                    assert_eq!(
                                        t.url.as_str(),
                                        format!("https://example.com/{code}")
                                    );
                                }
                            }
                        }
                    }
                });
            }
        });
        assert!(l1.len() <= 300 + 1, "{} entries", l1.len());
        for shard in &l1.shared.shards {
            let table = shard.read().unwrap();
            let used = table.slots.iter().filter(|s| s.entry.is_some()).count();
            assert_eq!(used, table.len, "a shard's count drifted from its slots");
            for (i, slot) in table.slots.iter().enumerate() {
                if let Some(h) = &slot.entry {
                    assert_eq!(
                        table.find(slot.tag(), h.code()),
                        Some(i),
                        "unreachable entry"
                    );
                }
            }
        }
    }

    #[test]
    fn a_large_l1_stays_within_its_capacity_across_shards() {
        let l1 = L1::new(20_000, Duration::ZERO, Arc::default());
        assert_eq!(l1.shared.shards.len(), 4);
        for i in 0..50_000 {
            let code = format!("k{i}");
            l1.insert(&code, found(&code), LONG, None);
        }
        assert!(l1.len() <= 20_000, "{} entries", l1.len());
        assert!(l1.len() >= 19_000, "{} entries", l1.len());
        let last = "k49999";
        assert_eq!(
            url_of(l1.lookup(last, 0)),
            Some(format!("https://example.com/{last}"))
        );
    }

    proptest! {
        /// Any mix of inserts and removals over a few tags (so runs collide and wrap)
        /// answers as a map of the live codes would, within the capacity.
        #[test]
        fn the_table_answers_like_a_map(ops in prop::collection::vec((0u8..3, 0u8..40), 1..300)) {
            let mut t = Table::new(1000, 0);
            let mut model = std::collections::HashMap::new();
            for (op, k) in ops {
                let code = format!("c{k}");
                // Few tags, clustered at the top of the range: probes wrap around.
                let tag = TAG_MASK - u32::from(k % 5);
                if op == 0 {
                    t.remove(tag, &code);
                    model.remove(&code);
                } else {
                    t.insert(tag, Entry::new(&code, found(&code)), LONG, 0);
                    model.insert(code, ());
                }
                prop_assert_eq!(t.len, model.len());
            }
            for k in 0u8..40 {
                let code = format!("c{k}");
                let tag = TAG_MASK - u32::from(k % 5);
                prop_assert_eq!(t.lookup(tag, &code, 0).is_some(), model.contains_key(&code));
            }
        }
    }
}
