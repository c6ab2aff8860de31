//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;

/// Liveness: answers while the process can serve.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when the store answers within a second, 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store_up = matches!(
        tokio::time::timeout(Duration::from_secs(1), state.links.ping()).await,
        Ok(Ok(()))
    );
    let (status, word) = if store_up {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let check = if store_up { "up" } else { "down" };
    (
        status,
        Json(json!({"status": word, "checks": {"store": check}})),
    )
}
