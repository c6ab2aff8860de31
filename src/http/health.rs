//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::resilience::BreakerState;

/// Liveness: answers while the process can serve.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness, from the background checks of `app::health` (each dependency every 250 ms),
/// so it answers at once. 200 while the store answers — Redis and NATS have fallbacks, so
/// without them the node is `degraded` but serves; 503 when the store does not.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    let check = |up: bool, required: bool, circuit: BreakerState| {
        json!({
            "state": if up { "up" } else { "down" },
            "required": required,
            "circuit": circuit.as_str(),
        })
    };
    // The store's breaker follows the background checks and every call: closed is up.
    let circuit = state.store_guard.breaker.state();
    let store_up = circuit == BreakerState::Closed;
    let mut checks = serde_json::Map::new();
    checks.insert("store".into(), check(store_up, true, circuit));
    let mut degraded = false;
    if let Some(redis) = &state.redis {
        let circuit = redis.breaker().state();
        let up = state.health.redis_up() && circuit == BreakerState::Closed;
        degraded |= !up;
        checks.insert("redis".into(), check(up, false, circuit));
    }
    if let Some(nats) = &state.nats {
        let up = nats.is_connected();
        degraded |= !up;
        checks.insert("nats".into(), check(up, false, nats.breaker().state()));
    }
    let (status, word) = match (store_up, degraded) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "ready"),
    };
    (status, Json(json!({"status": word, "checks": checks})))
}
