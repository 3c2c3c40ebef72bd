//! `POST /invitation-update`: the invitations contract's HTTP way in.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;

use super::{ApiError, ApiJson, ApiKey};
use crate::invitations::{self, InvitationUpdate};
use crate::publication::Source;
use crate::publish::Receipt;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/invitation-update", post(invitation_update))
}

async fn invitation_update(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(update): ApiJson<InvitationUpdate>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let receipt = invitations::apply(&state.db, &state.publisher, update, Source::Http)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}
