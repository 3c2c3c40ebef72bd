//! `watch-invitation` / `unwatch-invitation`: join or leave `invitation:{id}` rooms.
//! Payload: an id, `{invitationId}` or `{invitationIds: [...]}`. Who may watch is
//! [`invitations::may_watch`]'s rule; a refusal names why: `invitation_unknown` (the directory
//! does not know the invitation's organization yet), `forbidden` (another organization's).

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
    let organization = identity.organization_id.as_deref();
    for id in &ids {
        invitations::may_watch(&state.db, organization, id).await.map_err(refused)?;
    }
    let room = |id: &String| Room::Invitation(id.clone()).name();
    let watching: Vec<String> = socket.rooms().iter().map(|r| r.to_string()).collect();
    super::recovery::join(&state, &socket, ids.iter().map(room).collect()).await;
    // The directory may have moved an invitation to another organization between the check and
    // the join, its eviction passing this socket by: checked again now that the socket is in
    // the rooms (an eviction ordered after this check finds it there). A refusal leaves the
    // refused room and those this call joined.
    for id in &ids {
        if let Err(refusal) = invitations::may_watch(&state.db, organization, id).await {
            let joined = ids.iter().map(room).filter(|r| *r == room(id) || !watching.contains(r)).collect();
            super::recovery::leave(&state, &socket, joined).await;
            return Err(refused(refusal));
        }
    }
    Ok(fields([("invitationIds", json!(ids))]))
}

fn refused(refusal: WatchRefusal) -> AckError {
    let code = match refusal {
        WatchRefusal::Unknown(_) => "invitation_unknown",
        WatchRefusal::OtherOrganization(_) => "forbidden",
        WatchRefusal::Unavailable => "unavailable",
    };
    AckError::new(code, refusal.to_string())
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
