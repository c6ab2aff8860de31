//! `/metrics` in the Prometheus text format. The counters live in the components that count
//! (cache, limiter, click queue) and are read here; nothing is global, so every app in a
//! test process reports only its own.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

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
        ("written", get(&clicks.written)),
    ] {
        let _ = writeln!(out, "snip_click_events_total{{state=\"{fate}\"}} {v}");
    }
    if let Some(redis) = &state.redis {
        family(
            &mut out,
            "snip_redis_up",
            "gauge",
            "Whether the last Redis call succeeded.",
        );
        let _ = writeln!(out, "snip_redis_up {}", u8::from(redis.is_up()));
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
