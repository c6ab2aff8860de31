//! What the HTTP edge counts: requests and their latency by route template and status class,
//! and redirects by outcome.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::resilience::HistogramVec;

/// Request and redirect counters of the HTTP edge.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Latency by route template (`/{code}`, never a raw path) and status class.
    pub requests: HistogramVec,
    /// Redirect requests by outcome, indexed by [`RedirectOutcome`].
    redirects: [AtomicU64; RedirectOutcome::ALL.len()],
}

impl HttpMetrics {
    /// Counts one redirect request.
    pub fn redirect(&self, outcome: RedirectOutcome) {
        self.redirects[outcome as usize].fetch_add(1, Ordering::Relaxed);
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

/// The label of a status's class: `2xx`, `3xx`, ...
pub fn status_class(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
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
}
