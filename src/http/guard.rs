//! Middleware in front of handlers: who is calling (API key → [`Caller`]) and whether they
//! may (token buckets). Rejections are problem+json `401`/`429`; admitted responses carry
//! `RateLimit-Policy` and `RateLimit` headers (IETF httpapi rate-limit headers draft).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use super::error::ApiError;
use crate::app::{AppState, users};
use crate::clock::to_millis;
use crate::domain::key::ApiKey;
use crate::ratelimit::{Decision, PolicyName, bucket_of};

fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// What the `Authorization` header holds.
enum Credentials {
    None,
    Malformed,
    Key(ApiKey),
}

fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credentials::None;
    };
    let token = value.to_str().ok().and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match token.and_then(ApiKey::parse) {
        Some(key) => Credentials::Key(key),
        None => Credentials::Malformed,
    }
}

/// Authenticates API requests and applies the per-key (or, without a valid key, per-IP)
/// bucket. The [`crate::app::Caller`] is left in the request's extensions for handlers.
pub async fn api(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = to_millis(state.clock.now());
    let ip = client_ip(
        peer_ip(&req),
        req.headers(),
        &state.settings.trusted_proxies,
    );
    let caller = match caller_of(&state, req.headers(), ip, now).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let policy = match (&caller, write) {
        (None, _) => PolicyName::Anonymous,
        (Some(_), true) => PolicyName::Writes,
        (Some(_), false) => PolicyName::Reads,
    };
    let bucket = bucket_key(caller.as_ref(), ip);
    let decision = state.limiter.check(policy, &bucket, now).await;
    if let Some(d) = decision
        && !d.allowed
    {
        return too_many(&state, policy, &d);
    }
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    let mut res = next.run(req).await;
    if let Some(d) = decision {
        add_headers(&state, policy, &d, res.headers_mut());
    }
    res
}

/// The caller the `Authorization` header names: `Ok(None)` without the header (handlers
/// answer 401 themselves; the anonymous bucket still applies), `Err` with the answer for a
/// malformed, unknown or revoked key (401, or 429 once the client's anonymous bucket is
/// empty).
pub async fn caller_of(
    state: &AppState,
    headers: &HeaderMap,
    ip: IpAddr,
    now: i64,
) -> Result<Option<crate::app::Caller>, Response> {
    match credentials(headers) {
        Credentials::None => Ok(None),
        Credentials::Malformed => Err(reject_anonymous(state, ip, now, "invalid API key").await),
        Credentials::Key(key) => match users::authenticate(state, &key).await {
            Ok(Some(caller)) => Ok(Some(caller)),
            Ok(None) => Err(reject_anonymous(state, ip, now, "invalid or revoked API key").await),
            Err(e) => Err(ApiError::from(e).into_response()),
        },
    }
}

/// Whose rate-limit bucket a request draws from: its API key's; a caller without a key
/// (a YOURLS user name and password) its user's; without a caller its client's address (a
/// /64 for IPv6). REST, GraphQL and the compatible APIs share these buckets.
pub fn bucket_key(caller: Option<&crate::app::Caller>, ip: IpAddr) -> String {
    match caller {
        Some(c) => match &c.key {
            Some(k) => format!("k{}", k.id),
            None => format!("u{}", c.user.id),
        },
        None => bucket_of(ip).to_string(),
    }
}

/// Whole seconds a refused client should wait, at least one (`Retry-After`).
pub fn retry_after_secs(d: &Decision) -> u64 {
    secs(d.retry_after).max(1)
}

/// A request with a bad key: charged to the client IP's anonymous bucket, then 401 (or 429
/// when that bucket is empty, so key guessing is throttled).
async fn reject_anonymous(state: &AppState, ip: IpAddr, now: i64, why: &str) -> Response {
    let policy = PolicyName::Anonymous;
    let decision = state.limiter.check(policy, bucket_of(ip), now).await;
    let mut res = match decision {
        Some(d) if !d.allowed => return too_many(state, policy, &d),
        _ => ApiError::unauthorized(why).into_response(),
    };
    if let Some(d) = decision {
        add_headers(state, policy, &d, res.headers_mut());
    }
    res
}

/// Applies the per-IP redirect bucket.
pub async fn redirects(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = client_ip(
        peer_ip(&req),
        req.headers(),
        &state.settings.trusted_proxies,
    );
    let decision = match redirect_token(&state, ip).await {
        Ok(d) => d,
        Err(refused) => return refused,
    };
    let mut res = next.run(req).await;
    if let Some(d) = decision {
        redirect_headers(&state, &d, res.headers_mut());
    }
    res
}

/// Takes a token from `ip`'s redirect bucket: `Ok` to go on (with the decision whose headers
/// [`redirect_headers`] adds; `None` when limiting is off), `Err` with the `429` answer.
pub async fn redirect_token(state: &AppState, ip: IpAddr) -> Result<Option<Decision>, Response> {
    if !state.limiter.limits().enabled {
        return Ok(None);
    }
    let now = to_millis(state.clock.now());
    let policy = PolicyName::Redirects;
    let decision = state.limiter.check(policy, bucket_of(ip), now).await;
    match decision {
        Some(d) if !d.allowed => Err(too_many(state, policy, &d)),
        d => Ok(d),
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers of an admitted redirect.
pub fn redirect_headers(state: &AppState, d: &Decision, headers: &mut HeaderMap) {
    add_headers(state, PolicyName::Redirects, d, headers);
}

fn secs(x: f64) -> u64 {
    if x.is_finite() {
        x.ceil().max(0.0) as u64
    } else {
        u64::MAX
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers of an admitted request.
pub fn add_headers(state: &AppState, name: PolicyName, d: &Decision, headers: &mut HeaderMap) {
    let policy = state.limiter.limits().policy(name);
    let policy_value = format!(
        "\"{}\";q={};w={}",
        name.as_str(),
        policy.capacity.floor() as u64,
        secs(policy.window_secs())
    );
    let value = format!(
        "\"{}\";r={};t={}",
        name.as_str(),
        d.remaining.floor().max(0.0) as u64,
        secs(d.reset_after)
    );
    if let (Ok(p), Ok(v)) = (
        HeaderValue::from_str(&policy_value),
        HeaderValue::from_str(&value),
    ) {
        headers.insert("ratelimit-policy", p);
        headers.insert("ratelimit", v);
    }
}

/// The 429 answer of a spent budget, with `Retry-After` and the rate-limit headers.
pub fn too_many(state: &AppState, name: PolicyName, d: &Decision) -> Response {
    let retry = retry_after_secs(d);
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "too many requests ({} policy); retry in {retry} s",
            name.as_str()
        ),
    )
    .into_response();
    let headers = res.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    add_headers(state, name, d, headers);
    res
}
