//! The pause between attempts to reconnect to a service that went away (the Redis
//! invalidation channel, the NATS click consumer): short at first, so a blip costs little,
//! and longer while the service stays away, so a dead one is not hammered.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The first pause.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest pause.
pub const MOST: Duration = Duration::from_secs(2);

/// Pauses of 100 ms, doubling after each failed attempt up to 2 s, and back to 100 ms once
/// an attempt succeeds.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// After a failed attempt: sleeps for the current pause and doubles the next one.
    /// Returns `false`, at once, when `stop` is cancelled first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        tokio::select! {
            () = tokio::time::sleep(self.next) => {},
            () = stop.cancelled() => return false,
        }
        self.next = (self.next * 2).min(MOST);
        true
    }

    /// After a successful attempt: the next pause is the first one again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// How long `wait` slept.
    async fn timed_wait(backoff: &mut Backoff, stop: &CancellationToken) -> Duration {
        let start = Instant::now();
        assert!(backoff.wait(stop).await);
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_two_seconds() {
        let stop = CancellationToken::new();
        let mut backoff = Backoff::default();
        let mut pauses = Vec::new();
        for _ in 0..7 {
            pauses.push(timed_wait(&mut backoff, &stop).await.as_millis());
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[tokio::test(start_paused = true)]
    async fn success_starts_again_from_the_first_pause() {
        let stop = CancellationToken::new();
        let mut backoff = Backoff::default();
        for _ in 0..4 {
            timed_wait(&mut backoff, &stop).await;
        }
        backoff.reset();
        assert_eq!(timed_wait(&mut backoff, &stop).await, FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_stop_ends_the_wait_at_once() {
        let stop = CancellationToken::new();
        let mut backoff = Backoff::default();
        for _ in 0..6 {
            timed_wait(&mut backoff, &stop).await;
        }
        let start = Instant::now();
        let waiting = backoff.wait(&stop);
        stop.cancel();
        assert!(!waiting.await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
