//! The HTTP edge: the connection loop, the router, one module per resource, extractors and
//! error mapping. A connection is served by [`serve::serve`]: a `GET /{code}` of a cached
//! link is answered there (the hot path); any other request enters at [`router`], passes
//! the layers, and lands in a handler of
//! `links`, `users`, `redirect` or `health`, which calls a use case in `crate::app`.

pub mod client_ip;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
pub mod links;
pub mod metrics;
pub mod openapi;
pub mod redirect;
pub mod serve;
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
use crate::config::Role;
use error::ApiError;

/// Bulk requests carry up to 1,000 links, so they get a larger body limit.
const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Builds the whole application router.
pub fn router(state: AppState, role: Role) -> Router {
    let body_limit = state.settings.body_limit;
    let timeout = state.settings.request_timeout;
    let request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/links", post(links::create).get(links::list))
        .route(
            "/links/bulk",
            post(links::create_bulk).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT.max(body_limit))),
        )
        .route(
            "/links/{code}",
            get(links::get)
                .put(links::replace)
                .patch(links::patch)
                .delete(links::delete),
        )
        .route("/links/{code}/stats", get(links::stats))
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
        .fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(state.clone(), guard::api))
        // Redirects are bounded by the store's own timeout; API requests, which may make
        // several calls, by a deadline of their own.
        .layer(middleware::from_fn(move |req, next| {
            deadline(timeout, req, next)
        }));

    // Every role answers health checks and metrics; the rest depends on the role.
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics));
    if role.serves_api() {
        app = app.nest("/api/v1", api).merge(openapi::routes());
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
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestId))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id);
                        crate::telemetry::continue_trace(&span, req.headers());
                        span
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
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
async fn deadline(
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
