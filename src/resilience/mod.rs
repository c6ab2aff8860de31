//! Resilience for calls to other services (store, Redis, NATS): circuit breakers, back-off
//! with full jitter for retries, and the latency histograms that show how calls go.

pub mod backoff;
pub mod breaker;
pub mod histogram;

use std::time::Duration;

pub use backoff::Backoff;
pub use breaker::{Breaker, BreakerSettings, BreakerState, Permit};
pub use histogram::{Histogram, HistogramVec};

/// The pause before retry `attempt` (0-based): a uniformly random time between zero and
/// `base · 2^attempt` (capped at 30 s), so clients that failed together do not retry together
/// ("full jitter").
pub fn full_jitter(base: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(30));
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_growing_ceiling() {
        let base = Duration::from_millis(100);
        for attempt in 0..40 {
            let ceiling = (base * 2u32.pow(attempt.min(16))).min(Duration::from_secs(30));
            let pauses: Vec<Duration> = (0..200).map(|_| full_jitter(base, attempt)).collect();
            assert!(pauses.iter().all(|p| *p <= ceiling), "attempt {attempt}");
            // Random, not a fixed fraction of the ceiling.
            let distinct: std::collections::HashSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 100, "attempt {attempt}");
        }
    }
}
