//! What a plain WebSocket client may say: `subscribe` (with an optional `since`, and a filter:
//! `events`, `where`), `unsubscribe`, `filter` (`{type: "filter", channel, events?, where?}`, on
//! a channel it is subscribed to), `refresh` (a new token for the same user) and `ping`; each is
//! answered with a frame or refused with a reason.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::catch_up::{self, catch_up_or_release};
use super::outgoing::{connections, reply};
use super::refusal::Refusal;
use crate::auth::Identity;
use crate::filters::{Filter, FilterError};
use crate::hub::plain::Dialect;
use crate::lifetime::Conn;
use crate::state::AppState;
use crate::subscriptions;

/// Answers one client message (`None`: it answered itself).
pub(super) async fn handle(
    state: &AppState,
    id: &str,
    identity: &Mutex<Identity>,
    dialect: Dialect,
    text: &str,
) -> Result<Option<String>, Refusal> {
    let message: Value =
        serde_json::from_str(text).map_err(|e| Refusal::new("invalid_json", format!("not JSON: {e}")))?;
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::new("invalid_message", "a message needs a string `type`"))?;
    match kind {
        "ping" => Ok(Some(json!({"type": "pong"}).to_string())),
        "refresh" => {
            let token = message
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("invalid_message", "`refresh` needs a string `token`"))?;
            let current = identity.lock().unwrap().clone();
            let renewal = state.renew(&current, token).await?;
            let hub = connections(state);
            renewal.gone.iter().for_each(|r| hub.leave(id, r));
            renewal.added.iter().for_each(|r| hub.join(id, r));
            let renewed = renewal.identity;
            state.lifetimes.bind(Conn::Plain(id.to_owned()), renewed.expires_at);
            let expires_at = chrono::DateTime::<chrono::Utc>::from_timestamp(renewed.expires_at, 0).unwrap_or_default();
            *identity.lock().unwrap() = renewed;
            Ok(Some(json!({"type": "refreshed", "expiresAt": expires_at.to_rfc3339()}).to_string()))
        }
        "filter" => {
            let channel = message
                .get("channel")
                .or_else(|| message.get("room"))
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("invalid_message", "`filter` needs a string `channel`"))?;
            let filter = filter_of(&message)?;
            let answer =
                json!({"type": "filtered", "channel": channel, "filter": filter.as_ref().map(Filter::to_json)});
            if !connections(state).set_filter(id, channel, filter) {
                return Err(Refusal::new("not_in_room", format!("this connection is not subscribed to `{channel}`")));
            }
            Ok(Some(answer.to_string()))
        }
        "subscribe" | "unsubscribe" => {
            let channel = message
                .get("channel")
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("invalid_message", format!("`{kind}` needs a string `channel`")))?;
            let patterns = &state.settings.channel_patterns;
            let hub = connections(state);
            if kind == "subscribe" {
                let filter = filter_of(&message)?;
                let current = hub.rooms_of(id);
                let limit = state.settings.max_subscriptions;
                let room = subscriptions::subscribe(patterns, limit, channel, current.iter().map(String::as_str))?;
                state.broker.want(&[room.name()]).await;
                let since = match message.get("since").filter(|v| !v.is_null()) {
                    None => {
                        hub.join_filtered(id, &room.name(), filter);
                        return Ok(Some(json!({"type": "subscribed", "channel": channel}).to_string()));
                    }
                    Some(since) => catch_up::parse_since(since)
                        .ok_or_else(|| Refusal::new("invalid_since", "`since` is an offset or an RFC 3339 time"))?,
                };
                if !state.history.keeps(&room) {
                    return Err(Refusal::new(
                        "history_unavailable",
                        format!("`{channel}` keeps no history (HISTORY_ROOMS); subscribe without `since`"),
                    ));
                }
                hub.hold(id);
                hub.join_filtered(id, &room.name(), filter);
                reply(state, id, json!({"type": "subscribed", "channel": channel}).to_string());
                catch_up_or_release(state, id, dialect, &[room], since).await;
                Ok(None)
            } else {
                let room = subscriptions::unsubscribe(patterns, channel)?;
                hub.leave(id, &room.name());
                Ok(Some(json!({"type": "unsubscribed", "channel": channel}).to_string()))
            }
        }
        other => Err(Refusal::new(
            "unknown_type",
            format!("`{other}` is not one of subscribe, unsubscribe, filter, refresh, ping"),
        )),
    }
}

/// The filter a message's `events` and `where` describe (none when it has neither).
fn filter_of(message: &Value) -> Result<Option<Filter>, Refusal> {
    Filter::parse(message.get("events"), message.get("where"))
        .map_err(|e| Refusal::new(FilterError::CODE, e.to_string()))
}
