//! User and key use cases: bootstrap, admin CRUD, self-service, API keys.

use std::collections::HashMap;

use super::{AppError, AppState, Caller};
use crate::domain::key::{ApiKey, Scope, Scopes};
use crate::domain::user::{
    Email, Role, UserDraft, UserId, UserInput, UserPatch, apply_user_patch, validate_user,
};
use crate::store::{KeyRecord, NewKey, UserRecord};

/// The e-mail of the admin created at first start.
pub const BOOTSTRAP_EMAIL: &str = "admin@localhost";

/// The outcome of [`bootstrap`].
#[derive(Debug)]
pub enum Bootstrap {
    /// Users existed already; nothing was done.
    AlreadyDone,
    /// The first admin was created with the configured key.
    Created,
    /// The first admin was created with this fresh key, to be shown once.
    CreatedWithKey(ApiKey),
}

/// Creates the first admin when the store has no user. `configured` is the key it gets
/// (from `SNIP_BOOTSTRAP_ADMIN_KEY`); without one a fresh key is made and returned.
pub async fn bootstrap(
    state: &AppState,
    configured: Option<ApiKey>,
) -> Result<Bootstrap, AppError> {
    let (key, generated) = match configured {
        Some(k) => (k, false),
        None => (ApiKey::generate(), true),
    };
    let admin = UserDraft {
        email: Email::parse(BOOTSTRAP_EMAIL).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?,
        name: "Administrator".into(),
        role: Role::Admin,
    };
    let new_key = NewKey {
        user_id: 0,
        name: "bootstrap".into(),
        prefix: key.display_prefix().to_owned(),
        hash: key.hash(),
        scopes: Scopes::all(),
    };
    let created = state
        .users
        .bootstrap_admin(&admin, &new_key, state.clock.now())
        .await?;
    Ok(match (created, generated) {
        (false, _) => Bootstrap::AlreadyDone,
        (true, false) => Bootstrap::Created,
        (true, true) => Bootstrap::CreatedWithKey(key),
    })
}

/// Resolves an API key to its caller; `None` for unknown or revoked keys.
pub async fn authenticate(state: &AppState, key: &ApiKey) -> Result<Option<Caller>, AppError> {
    authenticate_hash(state, &key.hash()).await
}

/// The user with `email`, if there is one (for the command line, which acts for a user).
pub async fn by_email(
    state: &AppState,
    email: &crate::domain::user::Email,
) -> Result<Option<UserRecord>, AppError> {
    Ok(state.users.find_user_by_email(email).await?)
}

/// Seconds a YOURLS time-limited signature stays valid, before and after its timestamp.
pub const SIGNATURE_WINDOW_SECS: u64 = 43_200;

/// The caller a YOURLS time-limited signature names: `signature` is `hash` (or, when it is
/// not named, MD5 or SHA-256) of `timestamp` and a key's signature token, in either order,
/// with `timestamp` within 12 hours of now. `None` when no live key matches, the timestamp
/// is stale, or the server has no signature secret. Every live key is tried, as YOURLS
/// tries every user: a cost that grows with the number of keys.
pub async fn authenticate_signed(
    state: &AppState,
    timestamp: &str,
    signature: &str,
    hash: Option<&str>,
) -> Result<Option<Caller>, AppError> {
    use crate::domain::key::{SignatureHash, signature_token};
    let Some(secret) = state.settings.signature_secret.as_deref() else {
        return Ok(None);
    };
    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| state.clock.now().timestamp().abs_diff(t) < SIGNATURE_WINDOW_SECS);
    let hashes = match hash {
        Some(name) => match SignatureHash::parse(name) {
            Some(h) => vec![h],
            None => return Ok(None),
        },
        None => vec![SignatureHash::Md5, SignatureHash::Sha256],
    };
    if !fresh {
        return Ok(None);
    }
    let keys = state.users.live_key_hashes().await?;
    let found = keys.into_iter().find(|key_hash| {
        let token = signature_token(key_hash, secret);
        hashes
            .iter()
            .any(|h| h.matches(signature, timestamp, &token))
    });
    match found {
        Some(key_hash) => authenticate_hash(state, &key_hash).await,
        None => Ok(None),
    }
}

/// The caller of the live key whose stored hash is `key_hash`.
async fn authenticate_hash(state: &AppState, key_hash: &str) -> Result<Option<Caller>, AppError> {
    let Some((user, key)) = state.users.authenticate(key_hash).await? else {
        return Ok(None);
    };
    let stale = key
        .last_used_at
        .is_none_or(|t| state.clock.now() - t > chrono::TimeDelta::minutes(1));
    if stale {
        // Bookkeeping only: never make the request wait for it.
        let users = state.users.clone();
        let now = state.clock.now();
        let id = key.id;
        tokio::spawn(async move {
            if let Err(e) = users.touch_key(id, now).await {
                tracing::debug!(error = %e, "recording key use failed");
            }
        });
    }
    Ok(Some(Caller::with_key(user, key)))
}

/// Creates a user (admin only).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: UserInput,
) -> Result<UserRecord, AppError> {
    require_admin(caller)?;
    let draft = validate_user(input, Role::Member)?;
    Ok(state.users.create_user(&draft, state.clock.now()).await?)
}

/// Lists users by id (admin only).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    after: Option<UserId>,
    limit: u32,
) -> Result<(Vec<UserRecord>, bool), AppError> {
    require_admin(caller)?;
    Ok(state.users.list_users(after, limit).await?)
}

/// A user the caller may see: themself, or anyone for an admin. Others are "not found".
pub async fn get(state: &AppState, caller: &Caller, id: UserId) -> Result<UserRecord, AppError> {
    if caller.user.id == id {
        return Ok(caller.user.clone());
    }
    if !caller.is_admin() {
        return Err(AppError::NotFound);
    }
    state.users.get_user(id).await?.ok_or(AppError::NotFound)
}

/// The users of `ids` the caller may see (themself, or anyone for an admin), in one store
/// call; the others, and unknown ids, are absent.
pub async fn get_many(
    state: &AppState,
    caller: &Caller,
    ids: &[UserId],
) -> Result<HashMap<UserId, UserRecord>, AppError> {
    let mut out = HashMap::new();
    let mut wanted = Vec::with_capacity(ids.len());
    for &id in ids {
        if id == caller.user.id {
            out.insert(id, caller.user.clone());
        } else if caller.is_admin() {
            wanted.push(id);
        }
    }
    if !wanted.is_empty() {
        out.extend(
            state
                .users
                .get_users(&wanted)
                .await?
                .into_iter()
                .map(|u| (u.id, u)),
        );
    }
    Ok(out)
}

/// Replaces a user's fields (PUT). Only admins may change a role.
pub async fn replace(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    input: UserInput,
) -> Result<UserRecord, AppError> {
    caller.require(Scope::AccountWrite)?;
    let current = get(state, caller, id).await?;
    let draft = validate_user(input, current.role)?;
    save(state, caller, &current, draft).await
}

/// Applies a merge patch to a user (PATCH). Only admins may change a role.
pub async fn patch(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    patch: UserPatch,
) -> Result<UserRecord, AppError> {
    caller.require(Scope::AccountWrite)?;
    let current = get(state, caller, id).await?;
    let draft = apply_user_patch(current.draft(), patch)?;
    save(state, caller, &current, draft).await
}

async fn save(
    state: &AppState,
    caller: &Caller,
    current: &UserRecord,
    draft: UserDraft,
) -> Result<UserRecord, AppError> {
    if draft.role != current.role && !caller.is_admin() {
        return Err(AppError::Forbidden("changing a role needs an admin key"));
    }
    if current.role == Role::Admin && draft.role != Role::Admin {
        keep_an_admin(state).await?;
    }
    Ok(state
        .users
        .update_user(current.id, &draft, state.clock.now())
        .await?)
}

/// Deletes a user: their links are tombstoned first, then the user and their keys go.
/// Run again after a crash in between, it finishes the job.
pub async fn delete(state: &AppState, caller: &Caller, id: UserId) -> Result<(), AppError> {
    caller.require(Scope::AccountWrite)?;
    let user = get(state, caller, id).await?;
    if user.role == Role::Admin {
        keep_an_admin(state).await?;
    }
    let now = state.clock.now();
    let codes = state.links.delete_links_of(user.id, now).await?;
    for code in &codes {
        state.cache.refresh(code).await;
    }
    Ok(state.users.delete_user(user.id, now).await?)
}

/// Refuses to remove the last live admin (by deleting or demoting it): nobody could manage
/// users any more. Two admins removing each other at the same instant can still both pass;
/// `snip keys create --admin` restores access from the shell.
async fn keep_an_admin(state: &AppState) -> Result<(), AppError> {
    if state.users.count_admins().await? <= 1 {
        return Err(AppError::StateConflict(
            "last-admin",
            "this is the last admin; make another user an admin first",
        ));
    }
    Ok(())
}

/// Creates an API key for a user; the plaintext key is in the result and nowhere else.
/// A key never grants more than the key that creates it: the new key's scopes must all be
/// held by the caller's key. Without `scopes`, the new key gets `links:read links:write`,
/// limited to what the caller's key holds.
pub async fn create_key(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    name: Option<String>,
    scopes: Option<Vec<String>>,
) -> Result<(KeyRecord, ApiKey), AppError> {
    caller.require(Scope::AccountWrite)?;
    let user = get(state, caller, id).await?;
    let scopes = match scopes {
        None => Scopes::default_member().intersection(&caller.scopes),
        Some(names) => Scopes::parse_list(&names).map_err(|bad| {
            let known = Scope::ALL.map(Scope::as_str).join(", ");
            AppError::Validation(vec![crate::domain::FieldError::new(
                "scopes",
                format!("unknown scope {bad:?}; known: {known}"),
            )])
        })?,
    };
    if !scopes.is_subset_of(&caller.scopes) {
        return Err(AppError::Forbidden(
            "a key cannot create a key with a scope it does not hold itself",
        ));
    }
    if scopes.contains(Scope::UsersAdmin) && (user.role != Role::Admin || !caller.is_admin()) {
        return Err(AppError::Forbidden(
            "only an admin key can grant users:admin, to an admin",
        ));
    }
    let live = state.users.list_keys(user.id).await?.len();
    if live >= state.settings.max_keys_per_user as usize {
        return Err(AppError::StateConflict(
            "too-many-keys",
            "this user holds the most live API keys allowed; revoke one first",
        ));
    }
    let name = name.unwrap_or_default().trim().to_owned();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Validation(vec![crate::domain::FieldError::new(
            "name",
            "must be at most 100 printable characters",
        )]));
    }
    let key = ApiKey::generate();
    let record = state
        .users
        .create_key(
            &NewKey {
                user_id: user.id,
                name,
                prefix: key.display_prefix().to_owned(),
                hash: key.hash(),
                scopes,
            },
            state.clock.now(),
        )
        .await?;
    Ok((record, key))
}

/// A user's live keys.
pub async fn list_keys(
    state: &AppState,
    caller: &Caller,
    id: UserId,
) -> Result<Vec<KeyRecord>, AppError> {
    let user = get(state, caller, id).await?;
    Ok(state.users.list_keys(user.id).await?)
}

/// Revokes one of a user's keys.
pub async fn revoke_key(
    state: &AppState,
    caller: &Caller,
    id: UserId,
    key_id: i64,
) -> Result<(), AppError> {
    caller.require(Scope::AccountWrite)?;
    let user = get(state, caller, id).await?;
    Ok(state
        .users
        .revoke_key(user.id, key_id, state.clock.now())
        .await?)
}

fn require_admin(caller: &Caller) -> Result<(), AppError> {
    caller.require(Scope::UsersAdmin)?;
    if caller.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden("needs an admin"))
    }
}
