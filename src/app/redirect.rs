//! The redirect use case: from a code to where it goes, with every rule that can refuse it.

use super::{AppError, AppState, blocking};
use crate::clicks::ClickEvent;
use crate::domain::code::Code;
use crate::domain::link::RedirectStatus;
use crate::domain::password;
use crate::store::RedirectTarget;

/// What a request for a code gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Redirect to `url` with `status`.
    Redirect {
        /// Destination.
        url: String,
        /// Redirect status.
        status: RedirectStatus,
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

/// Resolves `code` for a visit, counting the click when one is made.
pub async fn resolve(
    state: &AppState,
    code: &str,
    visit: Visit<'_>,
) -> Result<Resolution, AppError> {
    let Some(code) = Code::from_path(code) else {
        return Ok(Resolution::NotFound);
    };
    let Some(target) = state.cache.get(&code).await? else {
        return Ok(Resolution::NotFound);
    };
    let now = state.clock.now();
    if target.deleted || target.expires_at.is_some_and(|t| t <= now) || used_up(&target) {
        return Ok(Resolution::Gone);
    }
    let redirect = Resolution::Redirect {
        url: target.url.as_str().to_owned(),
        status: target.redirect_status,
    };
    match visit {
        Visit::Peek | Visit::Preview => Ok(if target.password_hash.is_some() {
            Resolution::PasswordRequired
        } else {
            redirect
        }),
        Visit::Follow if target.password_hash.is_some() => Ok(Resolution::PasswordRequired),
        Visit::Follow => count(state, code, &target, redirect).await,
        Visit::Unlock(given) => {
            let Some(hash) = target.password_hash.clone() else {
                return count(state, code, &target, redirect).await;
            };
            let given = given.to_owned();
            if blocking(move || password::verify(&given, &hash)).await? {
                count(state, code, &target, redirect).await
            } else {
                Ok(Resolution::WrongPassword)
            }
        }
    }
}

fn used_up(target: &RedirectTarget) -> bool {
    target
        .max_clicks
        .is_some_and(|max| target.clicks_used >= max)
}

/// Counts a click: exactly, in the store, for links with `max_clicks`; through the click
/// queue, never waiting, for all.
async fn count(
    state: &AppState,
    code: Code,
    target: &RedirectTarget,
    redirect: Resolution,
) -> Result<Resolution, AppError> {
    if target.max_clicks.is_some() && !state.links.consume_click(&code).await? {
        // Used up: let the cache learn it, so later requests stop at the cached count.
        state.cache.refresh(&code).await;
        return Ok(Resolution::Gone);
    }
    state.clicks.record(ClickEvent {
        code,
        at: state.clock.now(),
    });
    Ok(redirect)
}
