//! The HTTP edge: the connection loop, the router, one module per resource, extractors and
//! error mapping. A connection is served by [`serve::serve`]: a `GET /{code}` of a cached
//! link is answered there (the hot path); any other request enters at [`router`], passes
//! the layers, and lands in a handler of
//! `links`, `stats`, `users`, `redirect` or `health`, which calls a use case in `crate::app`.

pub mod access;
pub mod client_ip;
pub mod conn;
pub mod error;
pub mod export;
pub mod extract;
pub mod guard;
pub mod health;
pub mod leftover;
pub mod links;
pub mod metrics;
pub mod openapi;
pub mod qr;
pub mod redirect;
pub mod serve;
pub mod stats;
pub mod users;

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::NodeRole;
use error::ApiError;

/// Room in a bulk body for one link besides its URL: title, tags, alias, password and JSON.
const BULK_ITEM_EXTRA: usize = 2048;

/// The body limit of bulk requests: room for 1,000 links of the longest URL allowed, and no
/// more (the items are also counted while the body is parsed).
pub fn bulk_body_limit(max_url_len: usize, body_limit: usize) -> usize {
    (crate::app::links::MAX_BULK * (max_url_len + BULK_ITEM_EXTRA)).max(body_limit)
}

/// Builds the whole application router. `pages` are the routes of the other surfaces (the
/// dashboard, `crate::web`, and GraphQL, `crate::graphql`), served beside the API and
/// sharing its layers.
pub fn router(state: AppState, role: NodeRole, pages: Router<AppState>) -> Router {
    let body_limit = state.settings.body_limit;
    let timeout = state.settings.request_timeout;
    let request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/links", post(links::create).get(links::list))
        .route(
            "/links/bulk",
            post(links::create_bulk).layer(DefaultBodyLimit::max(bulk_body_limit(
                state.settings.url_policy.max_len,
                body_limit,
            ))),
        )
        .route("/links/export", get(export::export))
        .route(
            "/links/{code}",
            get(links::get)
                .put(links::replace)
                .patch(links::patch)
                .delete(links::delete),
        )
        .route("/links/{code}/stats", get(stats::stats))
        .route("/links/{code}/qr", get(qr::qr))
        .route("/users", post(users::create).get(users::list))
        .route(
            "/users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/users/{id}/links", get(users::links))
        .route(
            "/users/{id}/keys",
            post(users::create_key).get(users::list_keys),
        )
        .route(
            "/users/{id}/keys/{key_id}",
            axum::routing::delete(users::revoke_key),
        )
        .route("/me", get(users::me))
        // After routing: the scope each route needs (`access::API_ROUTES`).
        .route_layer(middleware::from_fn(access::check))
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(state.clone(), guard::api))
        // Redirects are bounded by the store's own timeout; API requests, which may make
        // several calls, by a deadline of their own.
        .layer(middleware::from_fn(move |req, next| {
            deadline(timeout, req, next)
        }));

    // Every role answers health checks, metrics and the page the `type` of its problems
    // points to; the rest depends on the role.
    let mut app = Router::new()
        .route(error::PROBLEM_TYPES_PATH, get(error::problem_types))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics));
    if role.serves_api() {
        app = app
            .nest("/api/v1", api)
            .merge(openapi::routes())
            .merge(pages);
    }
    if role.serves_redirects() {
        app = app.route(
            "/{code}",
            get(redirect::follow).post(redirect::unlock).route_layer(
                middleware::from_fn_with_state(state.clone(), guard::redirects),
            ),
        );
    }
    app = app
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    if crate::telemetry::tracing_enabled() {
        app = app.layer(middleware::map_response(|mut res: Response| async move {
            crate::telemetry::inject_trace(res.headers_mut());
            res
        }));
    }
    app
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_response(error::fill_problem))
        .layer(middleware::from_fn(security_headers))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::map_request(drop_bad_request_id))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestId))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        let span = tracing::info_span!("request", method = %req.method(), path = %logged_path(req.uri().path()), request_id = %id);
                        crate::telemetry::continue_trace(&span, req.headers());
                        span
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
}

/// The `Content-Security-Policy` of the API docs page (Swagger UI): its scripts and styles
/// come from snip itself; it calls nothing else and is never framed.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Middleware: the security headers of every answer ([`add_security_headers`]).
async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut res = next.run(req).await;
    add_security_headers(&mut res, docs);
    res
}

/// Every answer gets `X-Content-Type-Options: nosniff`; an HTML page also gets a
/// `Content-Security-Policy` (its own, or the docs page's, or snip's pages' default) and a
/// `Referrer-Policy` (its own, or `no-referrer`). Redirects keep the browser's referrer policy, so
/// destinations see where their visitors come from as they do without snip.
pub fn add_security_headers(res: &mut Response, docs: bool) {
    if res.status().is_redirection() {
        return;
    }
    let headers = res.headers_mut();
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if html {
        let csp = if docs { DOCS_CSP } else { redirect::PAGE_CSP };
        headers
            .entry(axum::http::header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(csp));
        headers
            .entry(axum::http::header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("no-referrer"));
    }
}

/// A request's path as logs show it: a sign-in link's token (a secret until it is used)
/// is left out.
pub fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    use crate::app::sessions::SIGN_IN_PATH;
    match path.strip_prefix(SIGN_IN_PATH) {
        Some(token) if !token.is_empty() => format!("{SIGN_IN_PATH}…").into(),
        _ => path.into(),
    }
}

/// Longest client-supplied `X-Request-Id` kept.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's `X-Request-Id` may be kept and logged: 1 to 64 visible ASCII
/// characters. Others are replaced by a new id, so logs cannot be flooded or forged.
pub fn is_good_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=MAX_REQUEST_ID_LEN).contains(&b.len()) && b.iter().all(u8::is_ascii_graphic)
}

/// Removes a client's `X-Request-Id` that [`is_good_request_id`] refuses (a new one is
/// then made).
async fn drop_bad_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    if req
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !is_good_request_id(v))
    {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// A new request id: a random UUID (version 4) from the thread-local generator, without the
/// system call per id that `Uuid::new_v4` makes.
pub fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .expect("a UUID is a valid header value")
}

/// Gives each request without an `x-request-id` a new one ([`new_request_id`]).
#[derive(Clone, Copy)]
struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<tower_http::request_id::RequestId> {
        Some(tower_http::request_id::RequestId::new(new_request_id()))
    }
}

/// A request that takes longer than `limit` is answered 503 (with `Retry-After`) and its
/// work dropped, so a stuck dependency cannot hold connections forever.
pub async fn deadline(
    limit: std::time::Duration,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
            ApiError::unavailable("the request took too long; try again shortly").into_response()
        }
    }
}

/// A panic in a handler is a bug: log it and answer a plain 500 problem.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = msg, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "",
        "the server failed; the error has been logged",
    )
    .into_response()
}
