//! The in-process limiter: buckets in a sharded map (one short `std::sync::Mutex` section per
//! request, no `.await` inside), with buckets that have refilled completely swept away so
//! memory stays bounded however many distinct clients come by.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::bucket::{Bucket, Decision, Policy};

const SHARDS: usize = 32;

/// Buckets kept per shard before a sweep is forced.
const SWEEP_ABOVE: usize = 4_096;

/// A local token-bucket limiter.
pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<String, (Bucket, Policy)>>>,
    hasher: RandomState,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl LocalLimiter {
    /// Takes `cost` tokens from `key`'s bucket under `policy` (0 only looks): allowed while
    /// the bucket holds them.
    pub fn check(&self, policy: &Policy, key: &str, now_ms: i64, cost: u32) -> Decision {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((bucket, p)) = map.get_mut(key) {
            *p = *policy;
            return bucket.take_n(policy, now_ms, cost);
        }
        if map.len() >= SWEEP_ABOVE {
            map.retain(|_, (b, p)| !b.is_full(p, now_ms));
        }
        let mut bucket = Bucket::full(policy, now_ms);
        let d = bucket.take_n(policy, now_ms, cost);
        map.insert(key.to_owned(), (bucket, *policy));
        d
    }

    /// Forgets every bucket that has refilled completely; such a bucket is the same as none.
    pub fn sweep(&self, now_ms: i64) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, (b, p)| !b.is_full(p, now_ms));
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy::new(2.0, 1.0);

    #[test]
    fn keys_have_their_own_buckets() {
        let l = LocalLimiter::default();
        assert!(l.check(&P, "a", 0, 1).allowed);
        assert!(l.check(&P, "a", 0, 1).allowed);
        assert!(!l.check(&P, "a", 0, 1).allowed);
        assert!(l.check(&P, "b", 0, 1).allowed);
    }

    #[test]
    fn a_look_takes_nothing() {
        let l = LocalLimiter::default();
        for _ in 0..5 {
            assert!(l.check(&P, "a", 0, 0).allowed);
        }
        assert!(l.check(&P, "a", 0, 1).allowed);
        assert!(l.check(&P, "a", 0, 1).allowed);
        assert!(!l.check(&P, "a", 0, 0).allowed);
    }

    #[test]
    fn idle_buckets_are_swept_and_memory_stays_bounded() {
        let l = LocalLimiter::default();
        for i in 0..50_000 {
            l.check(&P, &format!("ip{i}"), i64::from(i) * 10, 1);
        }
        // Each bucket is full again 1 s after its request; the forced sweeps keep every shard
        // near SWEEP_ABOVE at most.
        assert!(l.len() <= SHARDS * (SWEEP_ABOVE + 1), "{}", l.len());
        l.sweep(10_000_000);
        assert!(l.is_empty());
    }
}
