//! The notification inbox over Socket.IO: undelivered notifications on connect, and
//! `notification:read {id}`, which the user's other connections are told of.

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, identity};
use crate::publish::{Audience, EventName, Publication, Source, inbox};
use crate::rooms::Room;
use crate::state::AppState;

/// Emits, to this socket only, the user's notifications that reached none of his connections.
pub async fn deliver_undelivered(state: &AppState, socket: &SocketRef, user_id: &str) {
    match inbox::claim_undelivered(&state.db, user_id, chrono::Utc::now()).await {
        Ok(rows) => {
            for row in rows {
                let data: Value = serde_json::from_str(&row.data).unwrap_or(Value::Null);
                let _ = socket.emit(crate::notifications::EVENT, &data);
            }
        }
        Err(e) => tracing::warn!(error = %e, "undelivered notifications could not be read"),
    }
}

pub async fn read(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let identity = identity(&socket)?;
    let id = match &data {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => match o.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(AckError::new("invalid_payload", "give {id: \"notification id\"}")),
        },
        _ => return Err(AckError::new("invalid_payload", "give {id: \"notification id\"}")),
    };
    let marked = inbox::mark_read(&state.db, &identity.user_id, &id, chrono::Utc::now())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "notification read failed");
            AckError::new("unavailable", "the inbox could not be written")
        })?;
    if !marked {
        return Err(AckError::new("not_found", format!("no unread notification `{id}`")));
    }
    let audience = Audience {
        everyone: false,
        rooms: vec![Room::User(identity.user_id.clone())],
        except: vec![Room::Named(socket.id.to_string())],
    };
    let event = EventName::parse("notification:read").expect("valid event name");
    state
        .publisher
        .publish(Publication::ephemeral(event, audience, json!({"id": id}), Source::ClientEvent))
        .await
        .map_err(|e| AckError::new("unavailable", e.to_string()))?;
    Ok(fields([("id", json!(id))]))
}
