//! The redirect use case: from a code to where it goes, with every rule that can refuse it.

use std::net::IpAddr;
use std::sync::Arc;

use tracing::Instrument;

use super::{AppError, AppState};
use crate::cache::CachedTarget;
use crate::clicks::ClickEvent;
use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::password;
use crate::domain::visit::referrer_host;
use crate::ratelimit::{Decision, PolicyName, bucket_of};
use crate::store::RedirectTarget;

/// How long shared caches (CDNs, proxies) may keep a permanent redirect at most.
pub const PERMANENT_MAX_AGE_SECS: u64 = 3600;

/// What a request for a code gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Redirect to `url` with `status`.
    Redirect {
        /// Destination.
        url: String,
        /// Redirect status.
        status: RedirectStatus,
        /// Seconds a shared cache may keep this answer; `None`: it must ask snip every
        /// time (temporary redirects, and links with a click limit).
        shared_max_age: Option<u64>,
    },
    /// A budget of the client ran out (unknown codes, password attempts): 429.
    Refused {
        /// The budget.
        policy: PolicyName,
        /// Its state, for `Retry-After` and the rate-limit headers.
        decision: Decision,
    },
    /// The link needs its password first.
    PasswordRequired,
    /// The password given was wrong.
    WrongPassword,
    /// No such code.
    NotFound,
    /// Deleted, expired, or used up.
    Gone,
}

/// How the code was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit<'a> {
    /// A `GET`: a click, counted.
    Follow,
    /// A `HEAD`: answered like a GET, but neither counted nor using up `max_clicks`.
    Peek,
    /// A `POST` of the password form.
    Unlock(&'a str),
    /// A `/{code}+` preview: shows the target, counts nothing.
    Preview,
}

/// Who followed the link, as far as analytics cares (borrowed from the request: only a
/// click that is recorded copies anything).
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's address (after trusted proxies).
    pub ip: IpAddr,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The `Referer` header.
    pub referer: Option<&'a str>,
}

/// Resolves `code` for a visit, counting the click when one is made.
pub async fn resolve(
    state: &AppState,
    code: &str,
    visit: Visit<'_>,
    client: &Client<'_>,
) -> Result<Resolution, AppError> {
    let Some(code) = Code::from_path(code) else {
        return Ok(Resolution::NotFound);
    };
    let now = state.clock.now();
    let now_ms = crate::clock::to_millis(now);
    let client_bucket = bucket_of(client.ip);
    // A code L1 does not know costs a store lookup: an unknown one is charged to the
    // client's miss budget, and a client whose budget is spent is refused before the
    // store is asked (enumeration).
    let known = state.cache.knows(&code);
    if !known
        && let Some(decision) = state
            .limiter
            .peek(PolicyName::Misses, client_bucket, now_ms)
            .await
        && !decision.allowed
    {
        return Ok(refused(PolicyName::Misses, decision));
    }
    let lookup = state.cache.get(&code);
    let Some(target) = lookup.instrument(tracing::debug_span!("cache.get")).await? else {
        if !known
            && let Some(decision) = state
                .limiter
                .check(PolicyName::Misses, client_bucket, now_ms)
                .await
            && !decision.allowed
        {
            return Ok(refused(PolicyName::Misses, decision));
        }
        return Ok(Resolution::NotFound);
    };
    if target.deleted || target.expires_at().is_some_and(|t| t <= now) || used_up(&target) {
        return Ok(Resolution::Gone);
    }
    let redirect = redirect_to(&target, now);
    match visit {
        Visit::Peek => {
            // Counted, as a bot; HEAD never uses up `max_clicks`.
            record(state, &target, client, true);
            Ok(if target.password_hash().is_some() {
                Resolution::PasswordRequired
            } else {
                redirect
            })
        }
        Visit::Preview => Ok(if target.password_hash().is_some() {
            Resolution::PasswordRequired
        } else {
            redirect
        }),
        Visit::Follow if target.password_hash().is_some() => Ok(Resolution::PasswordRequired),
        Visit::Follow => count(state, code, &target, redirect, client).await,
        Visit::Unlock(given) => {
            let Some(hash) = target.password_hash().map(str::to_owned) else {
                return count(state, code, &target, redirect, client).await;
            };
            // Every attempt is charged before the check, so concurrent guesses cannot
            // overrun the budgets: first the client's on this link, then the link's own.
            let per_client = format!("{client_bucket}/{code}");
            let checks = [
                (PolicyName::Passwords, per_client.as_str()),
                (PolicyName::LinkPasswords, code.as_str()),
            ];
            for (policy, key) in checks {
                if let Some(decision) = state.limiter.check(policy, key, now_ms).await
                    && !decision.allowed
                {
                    return Ok(refused(policy, decision));
                }
            }
            let given = given.to_owned();
            if state
                .passwords
                .check(move || password::verify(&given, &hash))
                .await?
            {
                count(state, code, &target, redirect, client).await
            } else {
                Ok(Resolution::WrongPassword)
            }
        }
    }
}

/// The hot path, first step: the link, if this node holds it fresh in L1 and it needs
/// nothing but a redirect (live, no password, no click limit). `None` sends the request the
/// general way, through [`resolve`], which applies every rule and counts the cache lookup.
pub fn hot_target(state: &AppState, code: &Code) -> Option<Arc<CachedTarget>> {
    let target = state.cache.peek(code)?;
    let plain = !target.deleted
        && target.password_hash().is_none()
        && target.max_clicks().is_none()
        && target.expires_at().is_none_or(|t| t > state.clock.now());
    plain.then_some(target)
}

/// The hot path, second step: counts the cache hit and the click of a [`hot_target`], and
/// answers without touching the store.
pub fn follow_hot(state: &AppState, target: &Arc<CachedTarget>, client: &Client<'_>) -> Resolution {
    state.cache.count_hit();
    record(state, target, client, false);
    redirect_to(target, state.clock.now())
}

/// The redirect to a live link. A permanent one may be kept by shared caches for an hour,
/// or until the link expires if that is sooner; one with a click limit never, since snip
/// must count every click.
fn redirect_to(target: &RedirectTarget, now: chrono::DateTime<chrono::Utc>) -> Resolution {
    let shared_max_age = if target.redirect_status.is_permanent() && target.max_clicks().is_none() {
        match target.expires_at() {
            None => Some(PERMANENT_MAX_AGE_SECS),
            Some(at) => {
                let left = (at - now).num_seconds().max(0) as u64;
                (left > 0).then_some(left.min(PERMANENT_MAX_AGE_SECS))
            }
        }
    } else {
        None
    };
    Resolution::Redirect {
        url: target.url.as_str().to_owned(),
        status: target.redirect_status,
        shared_max_age,
    }
}

/// A refusal by `policy` (the limiter has counted it).
fn refused(policy: PolicyName, decision: Decision) -> Resolution {
    Resolution::Refused { policy, decision }
}

fn used_up(target: &RedirectTarget) -> bool {
    target
        .max_clicks()
        .is_some_and(|max| target.clicks_used() >= max)
}

/// Counts a click: exactly, in the store, for links with `max_clicks`; through the click
/// queue, never waiting, for all.
async fn count(
    state: &AppState,
    code: Code,
    target: &Arc<CachedTarget>,
    redirect: Resolution,
    client: &Client<'_>,
) -> Result<Resolution, AppError> {
    if target.max_clicks().is_some() && !state.links.consume_click(&code).await? {
        // Used up: let the cache learn it, so later requests stop at the cached count.
        state.cache.refresh(&code).await;
        return Ok(Resolution::Gone);
    }
    record(state, target, client, false);
    Ok(redirect)
}

/// Puts a click on the queue (never waiting for it to be written).
fn record(state: &AppState, link: &Arc<CachedTarget>, client: &Client<'_>, head: bool) {
    if !state.settings.analytics {
        return;
    }
    let referrer = referrer_host(client.referer);
    let country = state.geoip.as_ref().and_then(|g| g.country(client.ip));
    state.clicks.record(&ClickEvent {
        link,
        slot: link.click_slot().read(),
        at: state.clock.now(),
        head,
        ip: client.ip,
        user_agent: client.user_agent.map(|ua| truncate(ua, 512)),
        referrer: referrer.as_deref(),
        country: country.as_deref(),
    });
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
