//! `watch-invitation` / `unwatch-invitation`: join or leave `invitation:{id}` rooms.
//! Payload: an id, `{invitationId}` or `{invitationIds: [...]}`.

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, identity};
use crate::id::LooseId;
use crate::invitations::{self, WatchRefusal};
use crate::rooms::{self, Room};
use crate::state::AppState;

/// At most this many invitations in one call.
const MAX_IDS: usize = 100;

pub async fn watch(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let identity = identity(&socket)?;
    let ids = invitation_ids(&data)?;
    for id in &ids {
        invitations::may_watch(&state.db, identity.organization_id.as_deref(), id).await.map_err(|refusal| {
            match refusal {
                WatchRefusal::OtherOrganization(_) => AckError::new("forbidden", refusal.to_string()),
                WatchRefusal::Unavailable => AckError::new("unavailable", refusal.to_string()),
            }
        })?;
    }
    super::recovery::join(&state, &socket, ids.iter().map(|id| Room::Invitation(id.clone()).name()).collect()).await;
    Ok(fields([("invitationIds", json!(ids))]))
}

pub async fn unwatch(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let ids = invitation_ids(&data)?;
    super::recovery::leave(&state, &socket, ids.iter().map(|id| Room::Invitation(id.clone()).name()).collect()).await;
    Ok(fields([("invitationIds", json!(ids))]))
}

fn invitation_ids(data: &Value) -> Result<Vec<String>, AckError> {
    let text = LooseId::of;
    let raw: Vec<String> = match data {
        Value::String(_) | Value::Number(_) => text(data).into_iter().collect(),
        Value::Object(o) if o.contains_key("invitationIds") => match &o["invitationIds"] {
            Value::Array(items) => items
                .iter()
                .map(|v| text(v).ok_or_else(|| bad("invitationIds must hold ids")))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("invitationIds must be a list of ids")),
        },
        Value::Object(o) => match o.get("invitationId").and_then(text) {
            Some(id) => vec![id],
            None => return Err(bad("give an id, {invitationId} or {invitationIds: [...]}")),
        },
        _ => return Err(bad("give an id, {invitationId} or {invitationIds: [...]}")),
    };
    if raw.is_empty() {
        return Err(bad("no invitation id given"));
    }
    if raw.len() > MAX_IDS {
        return Err(bad(&format!("at most {MAX_IDS} invitations per call")));
    }
    raw.iter().map(|id| rooms::id("invitationId", id).map_err(|e| bad(&e.to_string()))).collect()
}

fn bad(message: &str) -> AckError {
    AckError::new("invalid_payload", message)
}
