//! `/metrics` in the Prometheus text format. The counters live in the components that count
//! (cache, limiter, click queue) and are read here; nothing is global, so every app in a
//! test process reports only its own.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppError;
use crate::app::AppState;
use crate::app::redirect::Resolution;
use crate::resilience::{Breaker, HistogramVec};

/// What the HTTP edge counts: requests and their latency by route template and status
/// class, and redirects by outcome.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Latency by route template (`/{code}`, never a raw path) and status class.
    pub requests: HistogramVec,
    /// Redirect requests by outcome, in the order of [`REDIRECT_OUTCOMES`].
    pub redirects: [AtomicU64; REDIRECT_OUTCOMES.len()],
}

/// The outcomes redirects are counted by.
pub const REDIRECT_OUTCOMES: [&str; 7] = [
    "redirect",
    "password_required",
    "wrong_password",
    "not_found",
    "gone",
    "error",
    "refused",
];

impl HttpMetrics {
    /// Counts a redirect request's outcome.
    pub fn redirect(&self, outcome: &Result<Resolution, AppError>) {
        let i = match outcome {
            Ok(Resolution::Redirect { .. }) => 0,
            Ok(Resolution::PasswordRequired) => 1,
            Ok(Resolution::WrongPassword) => 2,
            Ok(Resolution::NotFound) => 3,
            Ok(Resolution::Gone) => 4,
            Err(_) => 5,
            Ok(Resolution::Refused { .. }) => 6,
        };
        self.redirects[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let res = next.run(req).await;
    let class = status_class(res.status());
    state
        .http
        .requests
        .with(&[
            route.as_ref().map_or("unmatched", MatchedPath::as_str),
            class,
        ])
        .observe(started.elapsed());
    res
}

/// The label of a status's class: `2xx`, `3xx`, ...
pub fn status_class(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn breaker_lines(out: &mut String, b: &Breaker) {
    let _ = writeln!(
        out,
        "snip_circuit_state{{dependency=\"{}\"}} {}",
        b.name(),
        b.state().as_gauge()
    );
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Renders every metric.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(2048);
    let cache = state.cache.stats();
    family(
        &mut out,
        "snip_cache_requests_total",
        "counter",
        "Redirect cache lookups by level and result.",
    );
    for (level, result, v) in [
        ("l1", "hit", get(&cache.l1_hits)),
        ("l1", "negative_hit", get(&cache.l1_negative_hits)),
        ("l1", "miss", get(&cache.l1_misses)),
        ("l2", "hit", get(&cache.l2_hits)),
        ("l2", "miss", get(&cache.l2_misses)),
        ("l2", "error", get(&cache.l2_errors)),
        ("store", "load", get(&cache.store_loads)),
    ] {
        let _ = writeln!(
            out,
            "snip_cache_requests_total{{level=\"{level}\",result=\"{result}\"}} {v}"
        );
    }
    family(
        &mut out,
        "snip_cache_invalidations_total",
        "counter",
        "Codes dropped from this node's L1.",
    );
    let _ = writeln!(
        out,
        "snip_cache_invalidations_total {}",
        get(&cache.invalidations)
    );
    family(
        &mut out,
        "snip_cache_entries",
        "gauge",
        "Entries in this node's L1 (found links and unknown codes).",
    );
    let _ = writeln!(out, "snip_cache_entries {}", state.cache.l1_len());

    family(
        &mut out,
        "snip_rate_limited_total",
        "counter",
        "Requests refused by a rate limit, by policy.",
    );
    for (policy, n) in state.limiter.limited() {
        let _ = writeln!(
            out,
            "snip_rate_limited_total{{policy=\"{}\"}} {n}",
            policy.as_str()
        );
    }
    family(
        &mut out,
        "snip_rate_limit_fallback_total",
        "counter",
        "Rate-limit decisions made locally because Redis failed.",
    );
    let _ = writeln!(
        out,
        "snip_rate_limit_fallback_total {}",
        state.limiter.fallbacks()
    );

    let clicks = state.clicks.stats();
    family(
        &mut out,
        "snip_click_events_total",
        "counter",
        "Click events by fate.",
    );
    for (fate, v) in [
        ("queued", get(&clicks.queued)),
        ("dropped", get(&clicks.dropped)),
        ("published", get(&clicks.published)),
        ("spilled", get(&clicks.spilled)),
        ("written", get(&clicks.written)),
        ("redelivered", get(&clicks.redelivered)),
    ] {
        let _ = writeln!(out, "snip_click_events_total{{state=\"{fate}\"}} {v}");
    }
    family(
        &mut out,
        "snip_click_batches_total",
        "counter",
        "Batches of clicks written to the store, one transaction each.",
    );
    let _ = writeln!(out, "snip_click_batches_total {}", get(&clicks.batches));
    family(
        &mut out,
        "snip_click_queue_depth",
        "gauge",
        "Click events waiting in this node's queue.",
    );
    let _ = writeln!(out, "snip_click_queue_depth {}", state.clicks.depth());
    if let Some(redis) = &state.redis {
        family(
            &mut out,
            "snip_redis_up",
            "gauge",
            "Whether the last Redis call succeeded.",
        );
        let _ = writeln!(out, "snip_redis_up {}", u8::from(redis.is_up()));
    }

    family(
        &mut out,
        "snip_http_request_duration_seconds",
        "histogram",
        "HTTP requests by route template and status class.",
    );
    state.http.requests.render(
        &mut out,
        "snip_http_request_duration_seconds",
        &["route", "status"],
    );
    family(
        &mut out,
        "snip_redirects_total",
        "counter",
        "Redirect requests by outcome.",
    );
    for (outcome, n) in REDIRECT_OUTCOMES.iter().zip(&state.http.redirects) {
        let _ = writeln!(
            out,
            "snip_redirects_total{{outcome=\"{outcome}\"}} {}",
            get(n)
        );
    }
    family(
        &mut out,
        "snip_cache_stale_served_total",
        "counter",
        "Redirects answered from an expired cache entry because the store was down.",
    );
    let _ = writeln!(
        out,
        "snip_cache_stale_served_total {}",
        get(&cache.stale_served)
    );

    let guard = &state.store_guard;
    family(
        &mut out,
        "snip_store_call_duration_seconds",
        "histogram",
        "Store calls by operation and outcome (ok, error, unavailable).",
    );
    guard.latency.render(
        &mut out,
        "snip_store_call_duration_seconds",
        &["op", "outcome"],
    );
    family(
        &mut out,
        "snip_store_pool_connections",
        "gauge",
        "Store connections by pool and state.",
    );
    for u in state.links.pool_usage() {
        let _ = writeln!(
            out,
            "snip_store_pool_connections{{pool=\"{}\",state=\"idle\"}} {}\n\
             snip_store_pool_connections{{pool=\"{}\",state=\"busy\"}} {}\n\
             snip_store_pool_connections{{pool=\"{}\",state=\"max\"}} {}",
            u.pool,
            u.idle,
            u.pool,
            u.size.saturating_sub(u.idle),
            u.pool,
            u.max
        );
    }
    family(
        &mut out,
        "snip_circuit_state",
        "gauge",
        "Circuit breaker per dependency: 0 closed, 1 open, 2 half-open.",
    );
    breaker_lines(&mut out, &guard.breaker);
    if let Some(redis) = &state.redis {
        breaker_lines(&mut out, redis.breaker());
    }
    if let Some(nats) = &state.nats {
        breaker_lines(&mut out, nats.breaker());
    }
    family(
        &mut out,
        "snip_circuit_rejected_total",
        "counter",
        "Calls refused at once because a dependency's circuit was open.",
    );
    let _ = writeln!(
        out,
        "snip_circuit_rejected_total{{dependency=\"store\"}} {}",
        get(&guard.breaker.rejected)
    );
    if let Some(redis) = &state.redis {
        let _ = writeln!(
            out,
            "snip_circuit_rejected_total{{dependency=\"redis\"}} {}",
            get(&redis.breaker().rejected)
        );
    }
    if let Some(nats) = &state.nats {
        let _ = writeln!(
            out,
            "snip_circuit_rejected_total{{dependency=\"nats\"}} {}",
            get(&nats.breaker().rejected)
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
