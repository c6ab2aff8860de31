//! A circuit breaker per dependency, so a dead one is not hammered and callers fail fast.
//!
//! **Closed**: calls go through; `failures_to_open` failures in a row open it.
//! **Open**: calls are refused at once until the open time has passed; the open time starts
//! at `open_for` and doubles each time a probe fails (up to `max_open_for`), with jitter so
//! nodes do not probe together. **Half-open**: one call (the probe) goes through; its
//! success closes the breaker, its failure opens it again.
//!
//! To the log, open and half-open are one outage: a line when it begins (with how long the
//! dependency had been fine) and one when it ends (with how long it lasted); a failed probe
//! is logged only at debug level.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a breaker reacts.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub failures_to_open: u32,
    /// First open time.
    pub open_for: Duration,
    /// Longest open time.
    pub max_open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::from_millis(500),
            max_open_for: Duration::from_secs(15),
        }
    }
}

/// The state, as metrics and `/readyz` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe call is allowed.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The state as a number for a gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, times: u32 },
    HalfOpen { probing: bool, times: u32 },
}

/// One dependency's breaker.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    settings: BreakerSettings,
    state: Mutex<State>,
    /// When the breaker last closed or opened (changed under `state`'s lock).
    since: Mutex<Instant>,
    /// Calls refused while open.
    pub rejected: AtomicU64,
    /// Times the breaker opened.
    pub opened: AtomicU64,
}

/// Leave to make one call. Report how it went with [`Permit::success`] or
/// [`Permit::failure`]; a permit dropped without either (the call was cancelled) counts as
/// neither, and lets another probe through.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    /// A closed breaker for the dependency `name` (used in logs and metrics).
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        Self {
            name,
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
            since: Mutex::new(Instant::now()),
            rejected: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state_at(Instant::now())
    }

    fn state_at(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Leave to call now, or `None` (counted) while the breaker is open.
    pub fn allow(&self) -> Option<Permit<'_>> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until, times } if now >= until => {
                *state = State::HalfOpen {
                    probing: true,
                    times,
                };
                true
            }
            State::HalfOpen {
                probing: false,
                times,
            } => {
                *state = State::HalfOpen {
                    probing: true,
                    times,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { probing: true, .. } => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// How long the breaker stays open, if it is.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = Instant::now();
        match *self.lock() {
            State::Open { until, .. } if now < until => Some(until - now),
            _ => None,
        }
    }

    /// Marks a change between closed and open; returns how long the last state lasted.
    fn changed(&self) -> Duration {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        std::mem::replace(&mut *since, now).elapsed()
    }

    fn succeeded(&self) {
        let mut state = self.lock();
        if !matches!(*state, State::Closed { .. }) {
            let open = self.changed();
            tracing::info!(
                dependency = self.name,
                open_ms = open.as_millis() as u64,
                "circuit closed: the dependency answers again"
            );
        }
        *state = State::Closed { failures: 0 };
    }

    fn failed_at(&self, now: Instant) {
        let mut state = self.lock();
        let times = match *state {
            State::Closed { failures } if failures + 1 < self.settings.failures_to_open => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                return;
            }
            State::Closed { .. } => 0,
            State::HalfOpen { times, .. } => times + 1,
            // A call that started before the breaker opened: it is open already.
            State::Open { .. } => return,
        };
        let ceiling = self
            .settings
            .open_for
            .saturating_mul(1 << times.min(16))
            .min(self.settings.max_open_for);
        // Between half and all of the ceiling, so nodes that failed together probe apart.
        let open_for = ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        *state = State::Open {
            until: now + open_for,
            times,
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        if times == 0 {
            let closed = self.changed();
            tracing::warn!(
                dependency = self.name,
                closed_secs = closed.as_secs(),
                "circuit open: calls fail fast until a probe succeeds"
            );
        } else {
            tracing::debug!(
                dependency = self.name,
                open_ms = open_for.as_millis() as u64,
                "probe failed; circuit stays open"
            );
        }
    }

    /// Opens the breaker now, as if `failures_to_open` calls had failed: a check found the
    /// dependency unreachable (a refused connect is no flake).
    pub fn trip(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if let State::Closed { .. } = *state {
            *state = State::Closed {
                failures: self.settings.failures_to_open,
            };
        }
        drop(state);
        self.failed_at(now);
    }

    /// Closes the breaker: a check outside the request path found the dependency
    /// answering, so requests need not wait for the next probe.
    pub fn close_after_check(&self) {
        self.succeeded();
    }

    fn released(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { times, .. } = *state {
            *state = State::HalfOpen {
                probing: false,
                times,
            };
        }
    }
}

impl Permit<'_> {
    /// The call reached the dependency and it answered.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.succeeded();
    }

    /// The call failed because of the dependency (connection, timeout).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.failed_at(Instant::now());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.released();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "test",
            BreakerSettings {
                failures_to_open: 3,
                open_for: Duration::from_secs(1),
                max_open_for: Duration::from_secs(4),
            },
        )
    }

    #[test]
    fn opens_after_failures_in_a_row_and_refuses_while_open() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..2 {
            b.allow_at(now).unwrap().failure();
        }
        // A success in between starts the count again.
        b.allow_at(now).unwrap().success();
        for _ in 0..2 {
            b.allow_at(now).unwrap().failure();
        }
        assert_eq!(b.state_at(now), BreakerState::Closed);
        b.allow_at(now).unwrap().failure();
        assert_eq!(b.state_at(now), BreakerState::Open);
        assert!(b.allow_at(now).is_none());
        assert!(b.allow_at(now + Duration::from_millis(400)).is_none());
        assert_eq!(b.rejected.load(Ordering::Relaxed), 2);
        assert_eq!(b.opened.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_probe_when_due_then_closes_on_success() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.allow_at(now).unwrap().failure();
        }
        // Open for between 0.5 and 1 s.
        let due = now + Duration::from_millis(1_100);
        assert_eq!(b.state_at(due), BreakerState::HalfOpen);
        let probe = b.allow_at(due).expect("the probe");
        assert!(b.allow_at(due).is_none(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state_at(due), BreakerState::Closed);
        assert!(b.allow_at(due).is_some());
    }

    #[test]
    fn a_failed_probe_opens_it_longer() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.allow_at(now).unwrap().failure();
        }
        let due = now + Duration::from_millis(1_100);
        b.allow_at(due).unwrap().failure();
        // The second open time is 1–2 s (ceiling 2 s): still open 0.9 s after the probe.
        let later = Instant::now() + Duration::from_millis(900);
        assert_eq!(b.state_at(later), BreakerState::Open);
        assert!(b.retry_after().is_some());
        assert_eq!(b.opened.load(Ordering::Relaxed), 2);
    }

    /// A log that keeps what is written to it.
    #[derive(Clone, Default)]
    struct Kept(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_outage_is_two_log_lines_however_many_probes_fail() {
        let kept = Kept::default();
        let writer = kept.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let b = breaker();
            let now = Instant::now();
            for _ in 0..3 {
                b.allow_at(now).unwrap().failure();
            }
            for i in 1..=10 {
                let due = now + Duration::from_secs(100 * i);
                b.allow_at(due).expect("a probe").failure();
            }
            b.allow_at(now + Duration::from_secs(2_000))
                .expect("a probe")
                .success();
            assert_eq!(b.opened.load(Ordering::Relaxed), 11);
        });
        let log = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].contains("circuit open") && lines[0].contains("closed_secs"));
        assert!(lines[1].contains("circuit closed") && lines[1].contains("open_ms"));
    }

    #[test]
    fn a_cancelled_probe_lets_another_through() {
        let b = breaker();
        let now = Instant::now();
        for _ in 0..3 {
            b.allow_at(now).unwrap().failure();
        }
        let due = now + Duration::from_millis(1_100);
        drop(b.allow_at(due).unwrap());
        assert!(b.allow_at(due).is_some());
    }
}
