//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(alive)).route("/readyz", get(ready))
}

/// The process answers: nothing else is checked.
async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Not while shutting down. Every dependency answers. A Redis outage makes the instance not ready (it still serves its
/// own clients, but a load balancer should prefer instances that reach the cluster).
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state.instance.draining() {
        return Err(ApiError::Unavailable {
            code: "draining",
            message: "this instance is shutting down and closing its connections".into(),
        });
    }
    if let Err(e) = state.db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Err(ApiError::Unavailable {
            code: "database_unavailable",
            message: "the database does not answer".into(),
        });
    }
    let redis = state.broker.link().as_str();
    if redis == "disconnected" {
        return Err(ApiError::Unavailable {
            code: "redis_unavailable",
            message: "Redis does not answer; this instance serves only its own connections".into(),
        });
    }
    Ok(Json(json!({"status": "ready", "database": "up", "redis": redis})))
}
