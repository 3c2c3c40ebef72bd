//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
}

/// The process answers: nothing else is checked.
async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Every dependency answers.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.db.ping().await {
        Ok(()) => Ok(Json(json!({"status": "ready", "database": "up"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            Err(ApiError::Unavailable {
                code: "database_unavailable",
                message: "the database does not answer".into(),
            })
        }
    }
}
