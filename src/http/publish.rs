//! `POST /api/events`: a backend publishes `{event, to, except?, data}`.
//! `POST /api/events/batch`: `{"events": [...]}`, up to [`MAX_BATCH`] publications in one
//! request, published in order; each is answered in its place with its receipt or its error, and
//! one refused item does not stop the others.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiKey};
use crate::publication::Source;
use crate::publish::{PublishRequest, Receipt};
use crate::state::AppState;

/// Publications one batch may carry (the body is also bounded by `MAX_PAYLOAD`).
pub const MAX_BATCH: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", post(publish_event)).route("/api/events/batch", post(publish_batch))
}

async fn publish_event(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let receipt = publish_one(&state, request).await?;
    // The connections' writers were just woken with the frames; let them write before this
    // task writes the receipt, so the delivery, not the backend's acknowledgement, goes first.
    tokio::task::yield_now().await;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

async fn publish_one(state: &AppState, request: PublishRequest) -> Result<Receipt, ApiError> {
    let publication = request.into_publication(&state.catalogue, state.settings.events_allow_unknown, Source::Http)?;
    Ok(state.publisher.publish(publication).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    /// Each item is read on its own, so that a malformed one is refused alone.
    events: Vec<Value>,
}

/// `200 {"results": [{"status": 202, "receipt": {...}} | {"status": 4xx/5xx, "error": {...}}]}`,
/// one per item, in order.
async fn publish_batch(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<Json<Value>, ApiError> {
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "events",
            format!("{} publications; a batch carries at most {MAX_BATCH}", batch.events.len()),
        ));
    }
    let mut results = Vec::with_capacity(batch.events.len());
    for (i, item) in batch.events.into_iter().enumerate() {
        // Read as `/api/events` reads its body: the refusal names the failing field's path.
        let outcome = match serde_path_to_error::deserialize::<_, PublishRequest>(item) {
            Ok(request) => publish_one(&state, request).await,
            Err(e) => Err(ApiError::BadRequest { code: "invalid_body", message: format!("events[{i}]: {e}") }),
        };
        results.push(match outcome {
            Ok(receipt) => json!({"status": StatusCode::ACCEPTED.as_u16(), "receipt": receipt}),
            Err(error) => {
                let (status, body) = error.status_and_body();
                json!({"status": status.as_u16(), "error": body})
            }
        });
    }
    Ok(Json(json!({ "results": results })))
}
