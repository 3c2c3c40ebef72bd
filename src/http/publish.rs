//! `POST /api/events`: a backend publishes `{event, to, except?, data}`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;

use super::{ApiError, ApiJson, ApiKey};
use crate::publication::Source;
use crate::publish::{PublishRequest, Receipt};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", post(publish_event))
}

async fn publish_event(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let publication = request.into_publication(
        &state.catalogue,
        state.settings.events_allow_unknown,
        Source::Http,
    )?;
    let receipt = state.publisher.publish(publication).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
