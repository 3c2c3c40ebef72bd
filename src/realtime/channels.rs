//! `subscribe` / `unsubscribe` `{channel}`: public channels only (`venue_updates`, `venue:{id}`,
//! `stores`, ... as `CHANNEL_PATTERNS` configures), with the same rule and limit as plain
//! WebSocket ([`crate::subscriptions`]); a private room's name is refused.

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, payload};
use crate::state::AppState;
use crate::subscriptions::{self, SubscriptionError};

#[derive(Deserialize)]
#[serde(untagged)]
enum ChannelRequest {
    Name(String),
    Object { channel: String },
}

impl ChannelRequest {
    fn name(self) -> String {
        match self {
            ChannelRequest::Name(n) | ChannelRequest::Object { channel: n } => n,
        }
    }
}

fn channel_name(data: Value) -> Result<String, AckError> {
    payload::<ChannelRequest>(data)
        .map(ChannelRequest::name)
        .map_err(|_| AckError::new("invalid_payload", "give {channel: \"name\"}"))
}

fn refused(e: SubscriptionError) -> AckError {
    AckError::new(e.code(), e.to_string())
}

pub async fn subscribe(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let name = channel_name(data)?;
    let current = socket.rooms();
    let settings = &state.settings;
    let room = subscriptions::subscribe(
        &settings.channel_patterns,
        settings.max_subscriptions,
        &name,
        current.iter().map(|r| r.as_ref()),
    )
    .map_err(refused)?;
    super::recovery::join(&state, &socket, vec![room.name()]).await;
    Ok(fields([("channel", json!(name))]))
}

pub async fn unsubscribe(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let name = channel_name(data)?;
    let room = subscriptions::unsubscribe(&state.settings.channel_patterns, &name).map_err(refused)?;
    super::recovery::leave(&state, &socket, vec![room.name()]).await;
    Ok(fields([("channel", json!(name))]))
}
