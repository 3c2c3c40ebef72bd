//! `/api/websocket`, the venue contract's control endpoint:
//! `POST {action: "broadcast", channel, data[, event]}`, `POST {action: "notify", userId, data}`,
//! and `GET` for the server's status.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiKey};
use crate::id::LooseId;
use crate::notifications::{self, Recipient};
use crate::publication::{Audience, Publication, Source};
use crate::publish::{Receipt, checked_event};
use crate::rooms::{self, public_channel};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/websocket", get(status).post(control))
}

async fn control(
    _: ApiKey,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let text = |name: &str| -> Result<String, ApiError> {
        match field(name) {
            Some(value) => LooseId::of(value).ok_or_else(|| ApiError::invalid_field(name, "must be a string")),
            None => Err(ApiError::invalid_field(name, "is required")),
        }
    };
    let data = field("data").cloned().unwrap_or(Value::Null);
    let receipt = match text("action")?.as_str() {
        "broadcast" => {
            let name = text("channel")?;
            let (room, pattern) = public_channel(&state.settings.channel_patterns, &name)
                .map_err(|e| ApiError::invalid_field("channel", e.to_string()))?;
            let event_name = match field("event") {
                Some(_) => text("event")?,
                None => pattern.event.clone(),
            };
            let event = checked_event(&state.catalogue, state.settings.events_allow_unknown, &event_name, &data)?;
            let publication = Publication::new(event, Audience::rooms(vec![room]), data, Source::Http);
            state.publisher.publish(publication).await?
        }
        "notify" => {
            let user =
                rooms::id("userId", &text("userId")?).map_err(|e| ApiError::invalid_field("userId", e.to_string()))?;
            notifications::notify(&state.publisher, &Recipient::User(user), data, Source::Http).await?
        }
        other => {
            return Err(ApiError::invalid_field("action", format!("`{other}` is not one of broadcast, notify")));
        }
    };
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// Counts only: no room names, which would reveal user ids.
async fn status(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "instanceId": state.instance.id,
        "uptimeSeconds": state.instance.started.elapsed().as_secs(),
        "connections": state.hub.connections(),
        "rooms": state.hub.rooms().await,
        "redis": state.broker.link().as_str(),
    }))
}
