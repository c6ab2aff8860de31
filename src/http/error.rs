//! The one place errors become responses: RFC 9457 `application/problem+json`.
//! Internal details are logged with the request's span, never sent.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::app::AppError;
use crate::domain::FieldError;
use crate::store::{StoreError, Taken};

/// Seconds a client should wait before retrying after a 503: about the time the circuit
/// breaker of a dead dependency waits before it probes again.
const RETRY_AFTER_SECS: &str = "2";

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The page of this service that describes every problem type, one anchor per slug. A
/// problem's `type` is the relative reference `/docs/problems#{slug}`, which a client
/// resolves against the request's URL (RFC 9457, section 3.1.1), so it names the page of
/// the deployment that answered. `docs` is a reserved word, so no short code hides it.
pub const PROBLEM_TYPES_PATH: &str = "/docs/problems";

/// Every kind of problem snip answers with: its slug, its status and what it means.
pub const PROBLEM_TYPES: &[(&str, StatusCode, &str)] = &[
    (
        "validation",
        StatusCode::UNPROCESSABLE_ENTITY,
        "Fields of the request are not valid; `errors` names each field and says why.",
    ),
    (
        "alias-taken",
        StatusCode::CONFLICT,
        "Another link already has this alias.",
    ),
    (
        "email-taken",
        StatusCode::CONFLICT,
        "Another user already has this e-mail address.",
    ),
    (
        "idempotency-in-flight",
        StatusCode::CONFLICT,
        "A request with this Idempotency-Key is still being processed; retry later.",
    ),
    (
        "idempotency-mismatch",
        StatusCode::UNPROCESSABLE_ENTITY,
        "This Idempotency-Key was used before with a different request body.",
    ),
    (
        "missing-scope",
        StatusCode::FORBIDDEN,
        "The API key lacks the scope this operation needs.",
    ),
    (
        "forbidden",
        StatusCode::FORBIDDEN,
        "The caller may not do this, whatever the scopes of the key (an admin is needed, \
         or a key cannot grant more than it holds).",
    ),
    (
        "last-admin",
        StatusCode::CONFLICT,
        "The change would leave no admin; make another user an admin first.",
    ),
    (
        "too-many-keys",
        StatusCode::CONFLICT,
        "The user holds the most live API keys allowed; revoke one first.",
    ),
    (
        "too-many-items",
        StatusCode::PAYLOAD_TOO_LARGE,
        "A bulk request holds more items than one request may.",
    ),
    (
        "link-gone",
        StatusCode::GONE,
        "The link was deleted, has expired or has reached its click limit.",
    ),
    (
        "rate-limited",
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests; the `Retry-After` header says when to try again.",
    ),
    (
        "unavailable",
        StatusCode::SERVICE_UNAVAILABLE,
        "A service snip depends on (the database) cannot be reached; retry after \
         `Retry-After` seconds.",
    ),
];

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The body of a problem response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem: `/docs/problems#{slug}`, a page of this
    /// service that describes it, or `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The fields that failed validation (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// A problem with a status, a kind (`slug`, or "" for about:blank) and a detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        debug_assert!(
            slug.is_empty() || PROBLEM_TYPES.iter().any(|(s, _, _)| *s == slug),
            "problem type {slug:?} is not described in PROBLEM_TYPES"
        );
        Self {
            status,
            slug,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 400 for a request that cannot be understood.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "", detail)
    }

    /// 503 for a dependency that is down, with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).with_header(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        )
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "", "no such resource")
    }

    /// 401 with the challenge clients need.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "", detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 422 with field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
        }
    }

    /// 500 that hides `cause` from the client and logs it.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, source = ?cause.source(), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "",
            "the server failed; the error has been logged",
        )
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        use StatusCode as S;
        match e {
            AppError::Validation(errors) => Self::validation(errors),
            AppError::NotFound => Self::not_found(),
            AppError::Conflict(Taken::Code) => {
                Self::new(S::CONFLICT, "alias-taken", "this alias is already taken")
            }
            AppError::Conflict(Taken::Email) => Self::new(
                S::CONFLICT,
                "email-taken",
                "a user with this e-mail already exists",
            ),
            AppError::Conflict(Taken::IdempotencyKey) | AppError::IdempotencyInFlight => Self::new(
                S::CONFLICT,
                "idempotency-in-flight",
                "a request with this Idempotency-Key is still being processed",
            ),
            AppError::MissingScope(scope) => Self::new(
                S::FORBIDDEN,
                "missing-scope",
                format!("this API key lacks the {} scope", scope.as_str()),
            ),
            AppError::Forbidden(why) => Self::new(S::FORBIDDEN, "forbidden", why),
            AppError::StateConflict(slug, why) => Self::new(S::CONFLICT, slug, why),
            AppError::Busy(why) => Self::unavailable(why),
            AppError::IdempotencyMismatch => Self {
                errors: vec![FieldError::new(
                    "Idempotency-Key",
                    "was used with a different request body",
                )],
                ..Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency-mismatch",
                    "this Idempotency-Key was used with a different request body",
                )
            },
            AppError::TooManyItems(n) => Self::new(
                S::PAYLOAD_TOO_LARGE,
                "too-many-items",
                format!("at most {n} items per request"),
            ),
            AppError::Store(StoreError::Unavailable(why)) => {
                // Refusals of the open breaker are not news: it logged the outage once.
                if why == crate::store::guarded::CIRCUIT_OPEN {
                    tracing::debug!(reason = %why, "store unavailable");
                } else {
                    tracing::warn!(reason = %why, "store unavailable");
                }
                Self::unavailable("the database cannot be reached; try again shortly")
            }
            e @ (AppError::Store(_) | AppError::Internal(_)) => Self::internal(&e),
        }
    }
}

/// The problem document for an error, also used for per-item results of bulk requests.
impl From<&ApiError> for Problem {
    fn from(e: &ApiError) -> Self {
        Problem {
            kind: if e.slug.is_empty() {
                "about:blank".to_owned()
            } else {
                format!("{PROBLEM_TYPES_PATH}#{}", e.slug)
            },
            title: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: e.status.as_u16(),
            detail: e.detail.clone(),
            errors: e.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Problem::from(&self)).unwrap_or_default();
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            res.headers_mut().append(name, value);
        }
        res
    }
}

/// Gives every bodiless error response (405 from the router, 413 from a body limit, …)
/// a problem body, so clients see one error format whatever produced the error.
pub async fn fill_problem(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this resource",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::NOT_FOUND => "no such resource",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let (mut parts, _) = res.into_parts();
    let mut problem = ApiError::new(status, "", detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in std::mem::take(problem.headers_mut()) {
        if let Some(name) = name {
            parts.headers.insert(name, value);
        }
    }
    Response::from_parts(parts, problem.into_body())
}

/// `GET /docs/problems`: the page that describes every problem type, one anchor per slug.
pub async fn problem_types() -> Html<String> {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>snip: problem types</title></head>\n<body>\n<h1>Problem types</h1>\n\
         <p>snip answers errors with <code>application/problem+json</code> documents \
         (RFC 9457). The <code>type</code> of a problem is one of the anchors below, or \
         <code>about:blank</code> when the status says it all.</p>\n<dl>\n",
    );
    for (slug, status, meaning) in PROBLEM_TYPES {
        page.push_str(&format!(
            "<dt id=\"{slug}\"><code>{slug}</code> ({status})</dt>\n<dd>{}</dd>\n",
            code_spans(meaning)
        ));
    }
    page.push_str("</dl>\n</body>\n</html>\n");
    Html(page)
}

/// Turns the `backquoted` words of a description into `<code>` elements.
fn code_spans(text: &str) -> String {
    let mut html = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            html.push_str("<code>");
            html.push_str(part);
            html.push_str("</code>");
        } else {
            html.push_str(part);
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_type_is_an_anchor_of_the_problem_types_page() {
        let problem = Problem::from(&ApiError::unavailable("down"));
        assert_eq!(problem.kind, "/docs/problems#unavailable");
        let problem = Problem::from(&ApiError::not_found());
        assert_eq!(problem.kind, "about:blank");
    }

    #[tokio::test]
    async fn the_page_has_one_anchor_per_problem_type() {
        let Html(page) = problem_types().await;
        for (slug, status, _) in PROBLEM_TYPES {
            assert_eq!(page.matches(&format!("id=\"{slug}\"")).count(), 1, "{slug}");
            assert!(page.contains(&format!("({status})")), "{slug}");
        }
        assert!(page.contains("<code>Retry-After</code>"));
    }

    #[test]
    fn each_problem_type_is_described_once() {
        let mut slugs: Vec<_> = PROBLEM_TYPES.iter().map(|(s, _, _)| *s).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), PROBLEM_TYPES.len());
    }
}
