//! Who is signed in, and whether a form really comes from the dashboard.
//!
//! - The session token travels in the `snip_session` cookie: `HttpOnly` (no script reads
//!   it), `SameSite=Lax` (no other site's form or frame sends it), `Secure` when the base
//!   URL is https, and scoped to `/app`.
//! - Every state-changing form carries the session's form token (a synchronizer token),
//!   compared in constant time. A form posted from another site lacks it.
//! - Every `POST` under `/app` whose `Origin` is not snip's own is refused first.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::app::sessions::{self, Opened, Session};
use crate::ratelimit::PolicyName;

/// The session cookie's name.
pub const COOKIE: &str = "snip_session";

/// The token of the session cookie, if the request has one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// Whether cookies get `Secure`: when snip is reached over https.
fn secure(state: &AppState) -> bool {
    state.settings.base_url.starts_with("https://")
}

/// The `Set-Cookie` that keeps a new session.
pub fn keep(state: &AppState, opened: &Opened) -> HeaderValue {
    let max_age = (opened.expires_at - state.clock.now()).num_seconds().max(0);
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        opened.token,
        super::PREFIX
    ))
    .expect("a hex token is a valid header value")
}

/// The `Set-Cookie` that forgets the session.
pub fn forget(state: &AppState) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        super::PREFIX
    ))
    .expect("a valid header value")
}

/// A page asked for without a live session goes to the sign-in page, which comes back.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = session_token(&parts.headers) {
            match sessions::resume(state, token).await {
                Ok(Some(session)) => {
                    return within_budget(state, &parts.method, &session)
                        .await
                        .map(|()| session);
                }
                Ok(None) => {}
                Err(e) => return Err(super::page::app_error(e)),
            }
        }
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|_| parts.method == Method::GET)
            .unwrap_or("/app/links");
        let to = format!("/app/sign-in?next={}", encode_component(back));
        Err(Redirect::to(&to).into_response())
    }
}

/// Draws a signed-in person's request from their budget: the API's `reads` policy for
/// pages, `writes` for forms, kept per person (apart from their keys' budgets).
async fn within_budget(
    state: &AppState,
    method: &Method,
    session: &Session,
) -> Result<(), Response> {
    let policy = if matches!(*method, Method::GET | Method::HEAD) {
        PolicyName::Reads
    } else {
        PolicyName::Writes
    };
    let bucket = format!("u{}", session.caller.user.id);
    let now = state.clock.now().timestamp_millis();
    match state.limiter.check(policy, &bucket, now).await {
        Some(d) if !d.allowed => {
            let wait = d.retry_after.ceil().max(1.0) as u64;
            let mut res = super::page::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Slow down",
                &format!("Too many requests at once. Try again in {wait} seconds."),
            );
            res.headers_mut().insert(header::RETRY_AFTER, wait.into());
            Err(res)
        }
        _ => Ok(()),
    }
}

/// A form posted by a signed-in person, its form token checked: the session and the
/// form's other fields. A form without the right token is refused before it is read.
pub struct Posted<T> {
    /// Who posted it.
    pub session: Session,
    /// The fields.
    pub form: T,
}

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = url::form_urlencoded::parse(&body)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        if !form_token_ok(&session, &token) {
            return Err(refused());
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|e| {
            super::page::error_page(
                StatusCode::BAD_REQUEST,
                "This form could not be read",
                &e.to_string(),
            )
        })?;
        Ok(Self { session, form })
    }
}

/// A numeric id in the path; anything else names nothing (404).
pub struct IdPath(pub i64);

impl FromRequestParts<AppState> for IdPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(p) => {
                p.0.parse()
                    .map(IdPath)
                    .map_err(|_| super::page::not_found())
            }
            Err(_) => Err(super::page::not_found()),
        }
    }
}

/// Whether `given` is the session's form token.
pub fn form_token_ok(session: &Session, given: &str) -> bool {
    let same: bool = session.csrf.as_bytes().ct_eq(given.as_bytes()).into();
    same && !given.is_empty()
}

/// The answer to a form that did not come from the dashboard.
pub fn refused() -> Response {
    super::page::error_page(
        StatusCode::FORBIDDEN,
        "This form was refused",
        "It did not come from this dashboard, or the page was too old. Go back, reload the page and try again.",
    )
}

/// Middleware: a `POST` whose `Origin` is not snip's own (or is `null`) is refused before
/// anything reads it. Browsers send `Origin` with every `POST`; a client without it (a
/// script) still needs the form token.
pub async fn same_origin_posts(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::POST
        && let Some(origin) = req.headers().get(header::ORIGIN)
        && !is_own_origin(&state.settings.base_url, origin.as_bytes())
    {
        return refused();
    }
    next.run(req).await
}

/// Whether `origin` (an `Origin` header) is the scheme, host and port of `base_url`.
pub fn is_own_origin(base_url: &str, origin: &[u8]) -> bool {
    let Ok(base) = url::Url::parse(base_url) else {
        return false;
    };
    let own = base.origin().ascii_serialization();
    own.as_bytes() == origin
}

/// Where to go after signing in: a dashboard path, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/app/")
                && !n.starts_with("/app//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/app/links".to_owned(),
    }
}

/// Percent-encodes `s` for a query value.
pub fn encode_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; snip_session=abc; b=2"),
        );
        assert_eq!(session_token(&h), Some("abc"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xsnip_session=abc"),
        );
        assert_eq!(session_token(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("snip_session="));
        assert_eq!(session_token(&h), None);
    }

    #[test]
    fn only_snips_own_origin_passes() {
        let base = "http://127.0.0.1:8080";
        assert!(is_own_origin(base, b"http://127.0.0.1:8080"));
        assert!(!is_own_origin(base, b"http://127.0.0.1:8081"));
        assert!(!is_own_origin(base, b"https://127.0.0.1:8080"));
        assert!(!is_own_origin(base, b"null"));
        assert!(is_own_origin("https://s.example/", b"https://s.example"));
        assert!(!is_own_origin(
            "https://s.example/",
            b"https://s.example.evil"
        ));
    }

    #[test]
    fn next_stays_in_the_dashboard() {
        assert_eq!(safe_next(Some("/app/links?q=x")), "/app/links?q=x");
        assert_eq!(safe_next(Some("//evil.example/app/")), "/app/links");
        assert_eq!(safe_next(Some("/app//evil.example")), "/app/links");
        assert_eq!(safe_next(Some("https://evil.example/app/")), "/app/links");
        assert_eq!(safe_next(Some("/app/\\evil")), "/app/links");
        assert_eq!(safe_next(None), "/app/links");
    }
}
