//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;

/// Liveness: answers while the process can serve.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: every configured dependency checked (each within a second). 200 while the
/// store answers — Redis and NATS have fallbacks, so without them the node is `degraded`
/// but serves; 503 when the store does not.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    const CHECK: Duration = Duration::from_secs(1);
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    let store_up = matches!(
        tokio::time::timeout(CHECK, state.links.ping()).await,
        Ok(Ok(()))
    );
    let mut checks = serde_json::Map::new();
    checks.insert(
        "store".into(),
        json!({
            "state": if store_up { "up" } else { "down" },
            "required": true,
            "circuit": state.store_guard.breaker.state().as_str(),
        }),
    );
    let mut degraded = false;
    if let Some(redis) = &state.redis {
        let up = matches!(
            tokio::time::timeout(
                CHECK,
                redis.call(|mut c| async move {
                    redis::cmd("PING").query_async::<String>(&mut c).await
                })
            )
            .await,
            Ok(Ok(_))
        );
        degraded |= !up;
        checks.insert(
            "redis".into(),
            json!({
                "state": if up { "up" } else { "down" },
                "required": false,
                "circuit": redis.breaker().state().as_str(),
            }),
        );
    }
    if let Some(nats) = &state.nats {
        let up = nats.is_connected();
        degraded |= !up;
        checks.insert(
            "nats".into(),
            json!({
                "state": if up { "up" } else { "down" },
                "required": false,
                "circuit": nats.breaker().state().as_str(),
            }),
        );
    }
    let (status, word) = match (store_up, degraded) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "ready"),
    };
    (status, Json(json!({"status": word, "checks": checks})))
}
