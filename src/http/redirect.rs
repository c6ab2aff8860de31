//! `GET|HEAD|POST /{code}`: the redirect itself, the password form, and `/{code}+` previews.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::client_ip::client_ip;
use super::error::ApiError;
use super::extract::ApiPath;
use crate::app::AppState;
use crate::app::redirect::{Client, Resolution, Visit, resolve};

/// The `Content-Security-Policy` of snip's own pages: no script, no plugin, inline style
/// only, forms posted back to snip, never framed.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The client as analytics sees it: address (after trusted proxies), agent, referrer.
fn client<'a>(state: &AppState, peer: SocketAddr, headers: &'a HeaderMap) -> Client<'a> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    Client {
        ip: client_ip(peer.ip(), headers, &state.settings.trusted_proxies),
        user_agent: header(header::USER_AGENT),
        referer: header(header::REFERER),
    }
}

/// Follows a code (GET, HEAD) or shows its preview (`{code}+`).
pub async fn follow(
    State(state): State<AppState>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiPath(code): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (code, visit) = match code.strip_suffix('+') {
        Some(code) => (code, Visit::Preview),
        None if method == Method::HEAD => (code.as_str(), Visit::Peek),
        None => (code.as_str(), Visit::Follow),
    };
    let client = client(&state, peer, &headers);
    let resolution = resolve(&state, code, visit, &client).await;
    state.http.redirect(super::metrics::outcome(&resolution));
    Ok(respond(&state, code, visit, resolution?))
}

/// The password form's fields.
#[derive(Deserialize)]
pub struct Unlock {
    /// The password typed.
    pub password: String,
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unlock { password: [redacted] }")
    }
}

/// Checks a password-protected link's password and redirects when it is right.
pub async fn unlock(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiPath(code): ApiPath<String>,
    form: Result<Form<Unlock>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Ok(Form(form)) = form else {
        return Err(ApiError::bad_request(
            "expected a form with a password field",
        ));
    };
    let client = client(&state, peer, &headers);
    let resolution = resolve(&state, &code, Visit::Unlock(&form.password), &client).await;
    state.http.redirect(super::metrics::outcome(&resolution));
    Ok(respond(&state, &code, Visit::Unlock(""), resolution?))
}

/// The answer to a resolved request for `code`.
pub(super) fn respond(
    state: &AppState,
    code: &str,
    visit: Visit<'_>,
    resolution: Resolution,
) -> Response {
    match (resolution, visit) {
        (Resolution::Refused { policy, decision }, _) => {
            super::guard::too_many(state, policy, &decision)
        }
        (Resolution::Redirect { url, .. }, Visit::Preview) => {
            html(StatusCode::OK, &preview_page(code, &url))
        }
        (
            Resolution::Redirect {
                url,
                status,
                shared_max_age,
            },
            visit,
        ) => {
            let Ok(location) = HeaderValue::from_str(&url) else {
                return ApiError::internal(&std::io::Error::other(
                    "stored URL is not a header value",
                ))
                .into_response();
            };
            // After a password, always 303: a 307/308 would make the browser post the
            // password on to the destination. Nobody may keep that answer.
            let (status, cache) = if matches!(visit, Visit::Unlock(_)) {
                (StatusCode::SEE_OTHER, HeaderValue::from_static("no-store"))
            } else {
                let cache = match shared_max_age {
                    Some(secs) => HeaderValue::from_str(&format!("public, max-age={secs}"))
                        .unwrap_or(HeaderValue::from_static("private, no-cache")),
                    None => HeaderValue::from_static("private, no-cache"),
                };
                let status = StatusCode::from_u16(status.code()).unwrap_or(StatusCode::FOUND);
                (status, cache)
            };
            (
                status,
                [(header::LOCATION, location), (header::CACHE_CONTROL, cache)],
            )
                .into_response()
        }
        (Resolution::PasswordRequired, Visit::Preview) => html(
            StatusCode::OK,
            &preview_page(code, "(protected by a password)"),
        ),
        (Resolution::PasswordRequired, _) => html(StatusCode::OK, &password_page(code, None)),
        (Resolution::WrongPassword, _) => {
            let mut res = html(
                StatusCode::UNAUTHORIZED,
                &password_page(code, Some("That password is not right.")),
            );
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Form realm=\"snip\""),
            );
            res
        }
        (Resolution::NotFound, _) => {
            ApiError::new(StatusCode::NOT_FOUND, "", "no link has this code").into_response()
        }
        (Resolution::Gone, _) => ApiError::new(
            StatusCode::GONE,
            "link-gone",
            "this link was deleted, has expired or has reached its click limit",
        )
        .into_response(),
    }
}

fn html(status: StatusCode, body: &str) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
        ],
        body.to_owned(),
    )
        .into_response()
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}\
input,button{font-size:1rem;padding:.5rem}code{word-break:break-all}.err{color:#b00}";

fn password_page(code: &str, error: Option<&str>) -> String {
    let code = escape(code);
    let error = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>Password required</title>\
         <style>{STYLE}</style></head><body><h1>This link is protected</h1>{error}\
         <form method=\"post\" action=\"/{code}\"><label>Password \
         <input type=\"password\" name=\"password\" required autofocus></label> \
         <button type=\"submit\">Continue</button></form></body></html>"
    )
}

fn preview_page(code: &str, target: &str) -> String {
    let code = escape(code);
    let target = escape(target);
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>Preview of /{code}</title>\
         <style>{STYLE}</style></head><body><h1>/{code} leads to</h1>\
         <p><code>{target}</code></p><p><a href=\"/{code}\" rel=\"noreferrer\">Continue</a></p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
