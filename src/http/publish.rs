//! `POST /api/events`: a backend publishes `{event, to, except?, data}`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiJson};
use crate::auth::ApiKey;
use crate::publish::{EventName, Publication, Receipt, Source, TargetSpec};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", post(publish_event))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    event: String,
    to: TargetSpec,
    #[serde(default)]
    except: Option<TargetSpec>,
    #[serde(default)]
    data: serde_json::Value,
}

async fn publish_event(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let event =
        EventName::parse(&request.event).map_err(|e| ApiError::invalid_field("event", e.to_string()))?;
    let audience = request
        .to
        .resolve(request.except.as_ref())
        .map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    let publication = Publication::new(event, audience, request.data, Source::Http);
    let receipt = state.publisher.publish(publication).await;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
