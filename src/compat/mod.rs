//! APIs of other link shorteners, so that tools written for them work with snip unchanged:
//! YOURLS at `/yourls-api.php` (`yourls.rs`) and a Shlink REST v3 subset under `/rest`
//! (`shlink.rs`). Each maps its requests onto the same use cases (`crate::app`), API keys,
//! scopes and rate limits as the REST API, and answers in the other service's own shapes.
//! `docs/compat.md` lists what maps to what and where snip differs.

pub mod shlink;
pub mod yourls;

use std::net::IpAddr;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::app::{AppState, Caller};
use crate::clock::to_millis;
use crate::ratelimit::{Decision, PolicyName, bucket_of};

/// The routes of both compatible APIs. A request that takes longer than the request
/// timeout is answered 503, as in the REST API.
pub fn routes(state: &AppState) -> Router<AppState> {
    let timeout = state.settings.request_timeout;
    yourls::routes()
        .merge(shlink::routes())
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::http::deadline(timeout, req, next)
        }))
}

/// A rate-limit decision and the policy it was taken under.
pub type Charged = Option<(PolicyName, Decision)>;

/// Charges a request of `caller` (or, without one, of the client `ip`) to its token bucket,
/// as the REST API would: writes and reads per key, anything unauthenticated per address.
/// `Err` carries the refusal.
pub async fn charge(
    state: &AppState,
    caller: Option<&Caller>,
    ip: IpAddr,
    write: bool,
) -> Result<Charged, (PolicyName, Decision)> {
    let policy = match (caller, write) {
        (None, _) => PolicyName::Anonymous,
        (Some(_), true) => PolicyName::Writes,
        (Some(_), false) => PolicyName::Reads,
    };
    let bucket = match caller {
        Some(c) => crate::http::guard::bucket_key(Some(c), ip),
        None => bucket_of(ip).to_string(),
    };
    let now = to_millis(state.clock.now());
    match state.limiter.check(policy, &bucket, now).await {
        Some(d) if !d.allowed => Err((policy, d)),
        d => Ok(d.map(|d| (policy, d))),
    }
}

/// Adds the rate-limit headers of `charged` to an answer; a refusal also gets
/// `Retry-After`.
pub fn add_limit_headers(state: &AppState, charged: Charged, headers: &mut HeaderMap) {
    if let Some((policy, d)) = charged {
        if !d.allowed {
            let retry = crate::http::guard::retry_after_secs(&d);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
        }
        crate::http::guard::add_headers(state, policy, &d, headers);
    }
}

/// The short URL of a code.
pub fn short_url(state: &AppState, code: &str) -> String {
    format!("{}/{code}", state.settings.base_url)
}
