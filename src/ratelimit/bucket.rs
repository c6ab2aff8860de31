//! The token bucket: `capacity` tokens, refilled continuously at `refill_per_sec`, capped at
//! capacity; each request takes one token or is refused. Pure arithmetic on a given time, so
//! it is tested without a clock, and the Redis script mirrors it line for line.

use serde::Deserialize;

/// One rate-limit policy.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Burst size: the most requests admitted at once.
    pub capacity: f64,
    /// Sustained rate: tokens added per second.
    pub refill_per_sec: f64,
}

impl Policy {
    /// A policy; both numbers must be positive.
    pub const fn new(capacity: f64, refill_per_sec: f64) -> Self {
        Self {
            capacity,
            refill_per_sec,
        }
    }

    /// This policy's share on one of `nodes` nodes (for the local fallback).
    pub fn divided(self, nodes: u32) -> Self {
        let n = f64::from(nodes.max(1));
        Self {
            capacity: (self.capacity / n).max(1.0),
            refill_per_sec: self.refill_per_sec / n,
        }
    }

    /// Seconds to refill an empty bucket: the policy's window.
    pub fn window_secs(&self) -> f64 {
        if self.refill_per_sec > 0.0 {
            self.capacity / self.refill_per_sec
        } else {
            f64::INFINITY
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: f64,
    /// Seconds until one token is available (0 when allowed).
    pub retry_after: f64,
    /// Seconds until the bucket is full again.
    pub reset_after: f64,
}

/// A bucket's state: tokens at an instant (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens at `at_ms`.
    pub tokens: f64,
    /// When `tokens` was computed.
    pub at_ms: i64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(policy: &Policy, now_ms: i64) -> Self {
        Self {
            tokens: policy.capacity,
            at_ms: now_ms,
        }
    }

    /// Tokens at `now_ms`, refilled since the last update. Time never runs backwards here:
    /// an earlier `now_ms` (clock skew between nodes) adds nothing.
    pub fn level(&self, policy: &Policy, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        (self.tokens + elapsed * policy.refill_per_sec).min(policy.capacity)
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, policy: &Policy, now_ms: i64) -> Decision {
        self.take_n(policy, now_ms, 1)
    }

    /// Allowed while the bucket holds `cost` tokens (one, for a cost of 0: only looking);
    /// then takes them. A refused request takes nothing.
    pub fn take_n(&mut self, policy: &Policy, now_ms: i64, cost: u32) -> Decision {
        let mut tokens = self.level(policy, now_ms);
        let need = f64::from(cost.max(1));
        let allowed = tokens >= need;
        if allowed {
            tokens -= f64::from(cost);
        }
        *self = Self {
            tokens,
            at_ms: now_ms.max(self.at_ms),
        };
        decision(policy, allowed, tokens, need)
    }

    /// Whether the bucket would be full by `now_ms` (and can be forgotten).
    pub fn is_full(&self, policy: &Policy, now_ms: i64) -> bool {
        self.level(policy, now_ms) >= policy.capacity
    }
}

/// The decision for a bucket left with `tokens` after a request that needed `need` tokens.
pub fn decision(policy: &Policy, allowed: bool, tokens: f64, need: f64) -> Decision {
    let rate = policy.refill_per_sec;
    let per = |missing: f64| {
        if missing <= 0.0 {
            0.0
        } else if rate > 0.0 {
            missing / rate
        } else {
            f64::INFINITY
        }
    };
    Decision {
        allowed,
        remaining: tokens,
        retry_after: if allowed { 0.0 } else { per(need - tokens) },
        reset_after: per(policy.capacity - tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy::new(3.0, 2.0);

    #[test]
    fn a_full_bucket_admits_capacity_then_refuses() {
        let mut b = Bucket::full(&P, 0);
        let allowed: Vec<bool> = (0..5).map(|_| b.take(&P, 0).allowed).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
    }

    #[test]
    fn refill_is_continuous_and_fractional() {
        let mut b = Bucket::full(&P, 0);
        for _ in 0..3 {
            b.take(&P, 0);
        }
        // 250 ms at 2/s is half a token: not enough.
        let d = b.take(&P, 250);
        assert!(!d.allowed);
        assert!((d.remaining - 0.5).abs() < 1e-9);
        assert!((d.retry_after - 0.25).abs() < 1e-9);
        // 250 ms more makes a whole token.
        assert!(b.take(&P, 500).allowed);
        assert!(b.take(&P, 500).remaining.abs() < 1e-9);
    }

    #[test]
    fn refill_is_capped_at_capacity() {
        let mut b = Bucket::full(&P, 0);
        b.take(&P, 0);
        // An hour later the bucket holds capacity, not 7,200 tokens.
        assert_eq!(b.level(&P, 3_600_000), 3.0);
        let allowed = (0..4).filter(|_| b.take(&P, 3_600_000).allowed).count();
        assert_eq!(allowed, 3);
        assert!(b.is_full(&P, 3_600_000 + 1_500));
    }

    #[test]
    fn a_drained_bucket_is_not_full_until_it_has_refilled() {
        // A sweep forgets full buckets; one forgotten early would hand a throttled client
        // a whole new budget.
        let mut b = Bucket::full(&P, 0);
        assert!(b.is_full(&P, 0));
        for _ in 0..3 {
            b.take(&P, 0);
        }
        assert!(!b.is_full(&P, 0));
        // 3 tokens at 2/s take 1.5 s: not full a millisecond before, full from then on.
        assert!(!b.is_full(&P, 1_499));
        assert!(b.is_full(&P, 1_500));
        // One token short is not full either.
        let mut b = Bucket::full(&P, 0);
        b.take(&P, 0);
        assert!(!b.is_full(&P, 0));
        assert!(!b.is_full(&P, 499));
        assert!(b.is_full(&P, 500));
    }

    #[test]
    fn time_running_backwards_adds_nothing() {
        let mut b = Bucket::full(&P, 10_000);
        for _ in 0..3 {
            b.take(&P, 10_000);
        }
        assert!(!b.take(&P, 5_000).allowed);
        assert_eq!(b.at_ms, 10_000);
    }

    #[test]
    fn a_cost_of_several_tokens_is_taken_whole_or_not_at_all() {
        let mut b = Bucket::full(&P, 0);
        let d = b.take_n(&P, 0, 2);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1.0);
        let d = b.take_n(&P, 0, 2);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1.0);
        assert_eq!(d.retry_after, 0.5);
        assert!(
            b.take_n(&P, 0, 0).allowed,
            "looking needs one token, and takes none"
        );
        assert!(b.take_n(&P, 0, 1).allowed);
    }

    #[test]
    fn reset_and_window() {
        let d = decision(&P, true, 1.0, 1.0);
        assert_eq!(d.reset_after, 1.0);
        assert_eq!(P.window_secs(), 1.5);
        assert_eq!(P.divided(2), Policy::new(1.5, 1.0));
        assert_eq!(Policy::new(1.0, 1.0).divided(4).capacity, 1.0);
    }
}
