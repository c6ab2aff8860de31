//! `GET /metrics` and the middleware that times every routed request. What is counted and how
//! it is written lives in `crate::metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppError;
use crate::app::AppState;
use crate::app::redirect::Resolution;
use crate::metrics::{RedirectOutcome, Scrape, status_class};

/// The outcome label of a redirect request.
pub fn outcome(resolution: &Result<Resolution, AppError>) -> RedirectOutcome {
    match resolution {
        Ok(Resolution::Redirect { .. }) => RedirectOutcome::Redirect,
        Ok(Resolution::PasswordRequired) => RedirectOutcome::PasswordRequired,
        Ok(Resolution::WrongPassword) => RedirectOutcome::WrongPassword,
        Ok(Resolution::NotFound) => RedirectOutcome::NotFound,
        Ok(Resolution::Gone) => RedirectOutcome::Gone,
        Ok(Resolution::Refused { .. }) => RedirectOutcome::Refused,
        Err(_) => RedirectOutcome::Error,
    }
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let res = next.run(req).await;
    state
        .http
        .requests
        .with(&[
            route.as_ref().map_or("unmatched", MatchedPath::as_str),
            status_class(res.status()),
        ])
        .observe(started.elapsed());
    res
}

/// Renders every metric.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = Scrape {
        cache: state.cache.clone(),
        limiter: state.limiter.clone(),
        clicks: state.clicks.clone(),
        redis: state.redis.clone(),
        nats: state.nats.clone(),
        links: state.links.clone(),
        store_guard: state.store_guard.clone(),
        http: state.http.clone(),
    }
    .render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}
