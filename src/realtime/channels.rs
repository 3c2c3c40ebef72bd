//! `subscribe` / `unsubscribe` `{channel}`: public channels only (`venue_updates`, `venue:{id}`,
//! `stores`, ... as `CHANNEL_PATTERNS` configures), with the same rule and limit as plain
//! WebSocket ([`crate::subscriptions`]); a private room's name is refused. `subscribe` may carry
//! a filter (`events`, `where`), and `filter {room, events?, where?}` sets (or, with neither,
//! removes) one on any room the socket is in, its home rooms included (SPEC H5).

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, payload};
use crate::filters::{Filter, FilterError};
use crate::rooms::{self, Room};
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
    let filter = filter_of(&data)?;
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
    super::recovery::join_filtered(&state, &socket, room.name(), filter.clone()).await;
    let mut answer = fields([("channel", json!(name))]);
    if let Some(filter) = filter {
        answer.insert("filter".into(), filter.to_json());
    }
    Ok(answer)
}

/// `filter {room, events?, where?}` → `{ok: true, room, filter}` (`filter: null` once removed).
pub async fn filter(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let filter = filter_of(&data)?;
    let name = data
        .get("room")
        .and_then(Value::as_str)
        .ok_or_else(|| AckError::new("invalid_payload", "give {room: \"name\", events?: [...], where?: {...}}"))?;
    let room = Room::parse(name).map_err(|e| AckError::new("invalid_payload", e.to_string()))?.name();
    if rooms::is_bookkeeping(&room) || !socket.rooms().iter().any(|r| *r == room) {
        return Err(AckError::new("not_in_room", format!("this socket is not in `{room}`")));
    }
    state.hub.set_filter(&socket, &room, filter.clone());
    super::recovery::saved(&state, &socket).await;
    Ok(fields([("room", json!(room)), ("filter", filter.map_or(Value::Null, |f| f.to_json()))]))
}

/// The filter a payload's `events` and `where` describe.
fn filter_of(data: &Value) -> Result<Option<Filter>, AckError> {
    Filter::parse(data.get("events"), data.get("where")).map_err(|e| AckError::new(FilterError::CODE, e.to_string()))
}

pub async fn unsubscribe(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let name = channel_name(data)?;
    let room = subscriptions::unsubscribe(&state.settings.channel_patterns, &name).map_err(refused)?;
    super::recovery::leave(&state, &socket, vec![room.name()]).await;
    Ok(fields([("channel", json!(name))]))
}
