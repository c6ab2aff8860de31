//! What the HTTP edge counts: requests and their latency by route template and status class,
//! and redirects by outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;

use crate::resilience::{Histogram, HistogramVec};

/// Request and redirect counters of the HTTP edge.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Latency by route template (`/{code}`, never a raw path) and status class.
    pub requests: HistogramVec,
    /// Redirect requests by outcome, indexed by [`RedirectOutcome`].
    redirects: [AtomicU64; RedirectOutcome::ALL.len()],
    /// The `/{code}` histograms of `requests` by status class, kept once first used, so that
    /// the redirect path skips the family's lookup (a key built and hashed, a lock taken).
    redirect_latency: [OnceLock<Arc<Histogram>>; STATUS_CLASSES.len()],
}

impl HttpMetrics {
    /// Counts one redirect request.
    pub fn redirect(&self, outcome: RedirectOutcome) {
        self.redirects[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a `GET /{code}` answered by the redirect path took.
    pub fn redirect_latency(&self, status: StatusCode, took: Duration) {
        let class = class_of(status);
        self.redirect_latency[class]
            .get_or_init(|| self.requests.with(&["/{code}", STATUS_CLASSES[class]]))
            .observe(took);
    }

    /// Redirect requests so far, by outcome.
    pub fn redirects(&self) -> impl Iterator<Item = (RedirectOutcome, u64)> + '_ {
        RedirectOutcome::ALL
            .into_iter()
            .zip(&self.redirects)
            .map(|(o, n)| (o, n.load(Ordering::Relaxed)))
    }
}

/// How a redirect request ended: the `outcome` label of `snip_redirects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectOutcome {
    /// Sent to the target.
    Redirect,
    /// Asked for the link's password.
    PasswordRequired,
    /// Given a wrong password.
    WrongPassword,
    /// No such link.
    NotFound,
    /// The link expired or was disabled.
    Gone,
    /// Something failed (a 5xx).
    Error,
    /// Refused: a miss or password budget spent.
    Refused,
}

impl RedirectOutcome {
    /// Every outcome, in the order they are written out.
    pub const ALL: [Self; 7] = [
        Self::Redirect,
        Self::PasswordRequired,
        Self::WrongPassword,
        Self::NotFound,
        Self::Gone,
        Self::Error,
        Self::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::PasswordRequired => "password_required",
            Self::WrongPassword => "wrong_password",
            Self::NotFound => "not_found",
            Self::Gone => "gone",
            Self::Error => "error",
            Self::Refused => "refused",
        }
    }
}

/// The labels of status classes.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The label of a status's class: `2xx`, `3xx`, ...
pub fn status_class(status: StatusCode) -> &'static str {
    STATUS_CLASSES[class_of(status)]
}

/// The index of a status's class in [`STATUS_CLASSES`].
fn class_of(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_apart() {
        let m = HttpMetrics::default();
        m.redirect(RedirectOutcome::Redirect);
        m.redirect(RedirectOutcome::Redirect);
        m.redirect(RedirectOutcome::Refused);
        let counts: Vec<_> = m.redirects().map(|(o, n)| (o.as_str(), n)).collect();
        assert_eq!(counts[0], ("redirect", 2));
        assert_eq!(counts[6], ("refused", 1));
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }

    #[test]
    fn the_redirect_path_records_into_the_family() {
        let m = HttpMetrics::default();
        m.redirect_latency(StatusCode::FOUND, Duration::from_millis(1));
        m.redirect_latency(StatusCode::FOUND, Duration::from_millis(1));
        m.requests
            .with(&["/{code}", "3xx"])
            .observe(Duration::from_millis(1));
        m.redirect_latency(StatusCode::NOT_FOUND, Duration::from_millis(1));
        assert_eq!(m.requests.with(&["/{code}", "3xx"]).count(), 3);
        assert_eq!(m.requests.with(&["/{code}", "4xx"]).count(), 1);
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }
}
