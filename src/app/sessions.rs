//! Signing in to the dashboard: account passwords, browser sessions and one-time sign-in
//! links.
//!
//! A session or link is a random token. The browser keeps the token (in a cookie, or in
//! the link); the store keeps only its SHA-256, so a leaked database opens no session.
//! Any node can check a token, since the store is shared.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::{AppError, AppState, Caller};
use crate::domain::FieldError;
use crate::domain::password;
use crate::domain::user::{Email, UserId};
use crate::ratelimit::{Decision, PolicyName};
use crate::store::{NewSession, SessionKind, SessionRecord, UserRecord};

/// How long a sign-in link stays valid.
pub const LINK_TTL: TimeDelta = TimeDelta::minutes(15);

/// Shortest account password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Longest account password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A PHC string checked when the e-mail is unknown, so an unknown account takes as long to
/// refuse as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c25pcGRlY295c2FsdA$\
                          0000000000000000000000000000000000000000000";

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle: TimeDelta,
    /// A session ends this long after sign-in, used or not.
    pub absolute: TimeDelta,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: TimeDelta::hours(24),
            absolute: TimeDelta::days(30),
        }
    }
}

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A session just opened: the token for the cookie and the form token.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The session token (the cookie's value).
    pub token: String,
    /// The form token.
    pub csrf: String,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
}

/// A signed-in request: who, and the session's form token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The person, with what their role allows.
    pub caller: Caller,
    /// The form token every state-changing form must carry.
    pub csrf: String,
    /// The hash of the session's token.
    pub token_hash: String,
}

/// Why a sign-in failed.
#[derive(Debug)]
pub enum SignInError {
    /// The e-mail or the password is wrong (never which).
    Wrong,
    /// Too many attempts: from this client, or on this account.
    Limited(PolicyName, Decision),
    /// Anything else.
    App(AppError),
}

impl From<AppError> for SignInError {
    fn from(e: AppError) -> Self {
        SignInError::App(e)
    }
}

/// Checks a new account password: 10 to 256 characters.
pub fn validate_password(field: &'static str, password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Err(FieldError::new(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ))
    } else if n > MAX_PASSWORD_CHARS {
        Err(FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ))
    } else {
        Ok(())
    }
}

/// The path of a one-time sign-in link, before its token. The token is a secret until it
/// is used: logs show such a path without it.
pub const SIGN_IN_PATH: &str = "/app/welcome/";

/// Makes a one-time sign-in link for a user, valid for [`LINK_TTL`]; returns its token.
/// Following it lets the user set a password.
pub async fn sign_in_link(state: &AppState, user_id: UserId) -> Result<String, AppError> {
    let token = new_token();
    let now = state.clock.now();
    let link = NewSession {
        token_hash: token_hash(&token),
        user_id,
        kind: SessionKind::Link,
        csrf: new_token(),
        expires_at: now + LINK_TTL,
    };
    state.users.create_session(&link, now).await?;
    Ok(token)
}

/// An admin makes a one-time sign-in link for another user (a new member, or one who
/// forgot their password); returns its token.
pub async fn invite(
    state: &AppState,
    caller: &Caller,
    user_id: UserId,
) -> Result<String, AppError> {
    if !caller.is_admin() {
        return Err(AppError::NotFound);
    }
    let user = super::users::get(state, caller, user_id).await?;
    sign_in_link(state, user.id).await
}

/// The user a sign-in link is for, while it is valid; it stays valid (a link checker that
/// opens it does not use it up).
pub async fn link_user(state: &AppState, token: &str) -> Result<UserRecord, AppError> {
    match state.users.session(&token_hash(token)).await? {
        Some((user, s)) if s.kind == SessionKind::Link && s.expires_at > state.clock.now() => {
            Ok(user)
        }
        _ => Err(AppError::NotFound),
    }
}

/// Uses up a sign-in link: sets the user's password and opens a session. Of two uses of
/// one link, one wins.
pub async fn redeem_link(
    state: &AppState,
    token: &str,
    new_password: &str,
) -> Result<Opened, AppError> {
    validate_password("password", new_password).map_err(|e| AppError::Validation(vec![e]))?;
    let user = link_user(state, token).await?;
    if !state.users.end_session(&token_hash(token)).await? {
        return Err(AppError::NotFound);
    }
    store_password(state, user.id, new_password).await?;
    open_session(state, user.id).await
}

/// Signs in with e-mail and password. Every attempt is charged before the check: to the
/// client (`client_bucket`) and to the account, so neither one client nor many together can
/// guess fast. An unknown e-mail costs the same check as a wrong password.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    given: &str,
    client_bucket: &str,
) -> Result<Opened, SignInError> {
    let user = check_password(state, email, given, client_bucket).await?;
    Ok(open_session(state, user.id).await?)
}

/// The user whose e-mail and password these are, under the same budgets as a sign-in
/// (per client and per account). Compatible APIs that take a user name and password on
/// each request check them here.
pub async fn check_password(
    state: &AppState,
    email: &str,
    given: &str,
    client_bucket: &str,
) -> Result<UserRecord, SignInError> {
    let now_ms = state.clock.now().timestamp_millis();
    let email = email.trim().to_ascii_lowercase();
    let per_client = format!("{client_bucket}/sign-in");
    let per_account = format!("account/{email}");
    let checks = [
        (PolicyName::Passwords, per_client.as_str()),
        (PolicyName::LinkPasswords, per_account.as_str()),
    ];
    for (policy, key) in checks {
        if let Some(decision) = state.limiter.check(policy, key, now_ms).await
            && !decision.allowed
        {
            return Err(SignInError::Limited(policy, decision));
        }
    }
    let user = match Email::parse(&email) {
        Ok(e) => state
            .users
            .find_user_by_email(&e)
            .await
            .map_err(AppError::from)?,
        Err(_) => None,
    };
    let hash = match &user {
        Some(u) => state
            .users
            .password_hash(u.id)
            .await
            .map_err(AppError::from)?,
        None => None,
    };
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
    let given = given.to_owned();
    let matches = state
        .passwords
        .check(move || password::verify(&given, &hash))
        .await?;
    match user {
        Some(u) if known && matches => Ok(u),
        _ => Err(SignInError::Wrong),
    }
}

/// Opens a new browser session for a user.
async fn open_session(state: &AppState, user_id: UserId) -> Result<Opened, AppError> {
    let token = new_token();
    let now = state.clock.now();
    let expires_at = now + state.settings.sessions.absolute;
    let session = NewSession {
        token_hash: token_hash(&token),
        user_id,
        kind: SessionKind::Web,
        csrf: new_token(),
        expires_at,
    };
    state.users.create_session(&session, now).await?;
    Ok(Opened {
        token,
        csrf: session.csrf,
        expires_at,
    })
}

/// The signed-in person of a session token; `None` when the token is unknown, is a
/// sign-in link, or has expired (idle or absolute), in which case the session is ended.
pub async fn resume(state: &AppState, token: &str) -> Result<Option<Session>, AppError> {
    let hash = token_hash(token);
    let Some((user, record)) = state.users.session(&hash).await? else {
        return Ok(None);
    };
    if record.kind != SessionKind::Web {
        return Ok(None);
    }
    let now = state.clock.now();
    if !is_live(&record, now, state.settings.sessions) {
        state.users.end_session(&hash).await?;
        return Ok(None);
    }
    if now - record.seen_at > TimeDelta::minutes(1) {
        // Bookkeeping only: never make the request wait for it.
        let users = state.users.clone();
        let hash = hash.clone();
        tokio::spawn(async move {
            if let Err(e) = users.touch_session(&hash, now).await {
                tracing::debug!(error = %e, "recording session use failed");
            }
        });
    }
    Ok(Some(Session {
        caller: Caller::signed_in(user),
        csrf: record.csrf,
        token_hash: hash,
    }))
}

/// Whether a session is within both its idle and its absolute limit at `now`.
pub fn is_live(record: &SessionRecord, now: DateTime<Utc>, policy: SessionPolicy) -> bool {
    now < record.expires_at && now - record.seen_at < policy.idle
}

/// Ends one session.
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), AppError> {
    state.users.end_session(&session.token_hash).await?;
    Ok(())
}

/// Ends every session of the signed-in person, this one included.
pub async fn sign_out_everywhere(state: &AppState, session: &Session) -> Result<u64, AppError> {
    Ok(state
        .users
        .end_sessions_of(session.caller.user.id, "")
        .await?)
}

/// Changes one's own password after checking the current one; ends the person's other
/// sessions.
pub async fn change_password(
    state: &AppState,
    session: &Session,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    let id = session.caller.user.id;
    let stored = state.users.password_hash(id).await?;
    let current = current.to_owned();
    let right = match stored {
        Some(hash) => {
            state
                .passwords
                .check(move || password::verify(&current, &hash))
                .await?
        }
        None => false,
    };
    if !right {
        return Err(AppError::Validation(vec![FieldError::new(
            "current",
            "is not your current password",
        )]));
    }
    validate_password("password", new).map_err(|e| AppError::Validation(vec![e]))?;
    store_password(state, id, new).await?;
    state.users.end_sessions_of(id, &session.token_hash).await?;
    Ok(())
}

/// Sets a user's password from the command line; ends all their sessions.
pub async fn set_password(state: &AppState, email: &str, new: &str) -> Result<(), AppError> {
    validate_password("password", new).map_err(|e| AppError::Validation(vec![e]))?;
    let email =
        Email::parse(email).map_err(|e| AppError::Validation(vec![FieldError::new("email", e)]))?;
    let user = state
        .users
        .find_user_by_email(&email)
        .await?
        .ok_or(AppError::NotFound)?;
    store_password(state, user.id, new).await?;
    state.users.end_sessions_of(user.id, "").await?;
    Ok(())
}

/// Hashes and stores a password.
async fn store_password(state: &AppState, id: UserId, new: &str) -> Result<(), AppError> {
    let new = new.to_owned();
    let hash = state
        .passwords
        .hash(move || password::hash(&new))
        .await?
        .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing a password: {e}")))?;
    state
        .users
        .set_password(id, &hash, state.clock.now())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created: i64, seen: i64, expires: i64) -> SessionRecord {
        let at = |m: i64| DateTime::<Utc>::from_timestamp(m * 60, 0).unwrap();
        SessionRecord {
            kind: SessionKind::Web,
            csrf: String::new(),
            created_at: at(created),
            seen_at: at(seen),
            expires_at: at(expires),
        }
    }

    #[test]
    fn a_session_ends_when_idle_or_past_its_absolute_end() {
        let policy = SessionPolicy {
            idle: TimeDelta::minutes(30),
            absolute: TimeDelta::minutes(120),
        };
        let at = |m: i64| DateTime::<Utc>::from_timestamp(m * 60, 0).unwrap();
        let r = record(0, 100, 120);
        assert!(is_live(&r, at(110), policy));
        assert!(is_live(&r, at(119), policy));
        assert!(!is_live(&r, at(120), policy), "absolute end");
        let idle = record(0, 10, 120);
        assert!(is_live(&idle, at(39), policy));
        assert!(!is_live(&idle, at(40), policy), "idle for 30 minutes");
    }

    #[test]
    fn passwords_are_ten_to_256_characters() {
        assert!(validate_password("p", &"a".repeat(9)).is_err());
        assert!(validate_password("p", &"a".repeat(10)).is_ok());
        assert!(validate_password("p", &"é".repeat(256)).is_ok());
        assert!(validate_password("p", &"é".repeat(257)).is_err());
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_hashes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn the_decoy_hash_is_well_formed_and_matches_nothing() {
        assert!(argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!password::verify("", DECOY_HASH));
        assert!(!password::verify("password", DECOY_HASH));
    }
}
