//! `notification:read {id}`: marks one of the user's notifications read, and tells his other
//! connections. (The inbox replay on connect is [`crate::notifications::undelivered`].)

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, identity};
use crate::event::EventName;
use crate::id::LooseId;
use crate::publication::{Audience, Publication, Source};
use crate::publish::inbox;
use crate::rooms::Room;
use crate::state::AppState;

pub async fn read(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let identity = identity(&socket)?;
    let id = match &data {
        Value::Object(o) => o.get("id").and_then(LooseId::of),
        other => LooseId::of(other),
    }
    .ok_or_else(|| AckError::new("invalid_payload", "give {id: \"notification id\"}"))?;
    let marked = inbox::mark_read(&state.db, &identity.user_id, &id, chrono::Utc::now()).await.map_err(|e| {
        tracing::error!(error = %e, "notification read failed");
        AckError::new("unavailable", "the inbox could not be written")
    })?;
    if !marked {
        return Err(AckError::new("not_found", format!("no unread notification `{id}`")));
    }
    let audience = Audience::except(vec![Room::User(identity.user_id.clone())], vec![Room::connection(socket.id)]);
    state
        .publisher
        .publish(Publication::ephemeral(EventName::NOTIFICATION_READ, audience, json!({"id": id}), Source::ClientEvent))
        .await
        .map_err(|e| AckError::new("unavailable", e.to_string()))?;
    Ok(fields([("id", json!(id))]))
}
