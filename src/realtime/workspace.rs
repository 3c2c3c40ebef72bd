//! Workspace rooms: `join-project`/`leave-project` `{projectId}`, `join-channel`/`leave-channel`
//! `{channelId}` (members only, per the directory), typing indicators, and room member counts.

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, identity};
use crate::directory::{self, MembershipKey, ResourceKind};
use crate::event::EventName;
use crate::id::LooseId;
use crate::publication::{Audience, Publication, Source};
use crate::rooms::{self, Room};
use crate::state::AppState;

pub async fn join_project(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    join(&state, &socket, &data, ResourceKind::Project).await
}

pub async fn leave_project(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    leave(&state, &socket, &data, ResourceKind::Project).await
}

pub async fn join_channel(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    join(&state, &socket, &data, ResourceKind::Channel).await
}

pub async fn leave_channel(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    leave(&state, &socket, &data, ResourceKind::Channel).await
}

pub async fn typing_start(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    typing(&state, &socket, &data, EventName::TYPING_START).await
}

pub async fn typing_stop(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    typing(&state, &socket, &data, EventName::TYPING_STOP).await
}

/// `room:members {room}`: how many sockets are in a room this socket is in.
pub async fn room_members(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let name = match &data {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("room")
            .and_then(Value::as_str)
            .ok_or_else(|| AckError::new("invalid_payload", "give {room: \"name\"}"))?
            .to_owned(),
        _ => return Err(AckError::new("invalid_payload", "give {room: \"name\"}")),
    };
    let room = Room::parse(&name).map_err(|e| AckError::new("invalid_payload", e.to_string()))?;
    if !in_room(&socket, &room) {
        return Err(AckError::new("not_in_room", format!("this socket is not in `{room}`")));
    }
    let members = state.publisher.member_count(&room).await;
    Ok(fields([("room", json!(room.name())), ("members", json!(members))]))
}

/// The workspace room `data` names, in the socket's tenant.
fn workspace_room(socket: &SocketRef, data: &Value, kind: ResourceKind) -> Result<(Room, MembershipKey), AckError> {
    let identity = identity(socket)?;
    let field = match kind {
        ResourceKind::Project => "projectId",
        ResourceKind::Channel => "channelId",
    };
    let raw = match data {
        Value::Object(o) => o.get(field),
        other => Some(other),
    };
    let resource_id = raw
        .and_then(LooseId::of)
        .ok_or_else(|| AckError::new("invalid_payload", format!("give {{{field}: \"id\"}}")))?;
    let resource_id = rooms::id(field, &resource_id).map_err(|e| AckError::new("invalid_payload", e.to_string()))?;
    let tenant =
        identity.tenant_id.ok_or_else(|| AckError::new("no_tenant", "your token names no tenant (tenantId claim)"))?;
    let room = match kind {
        ResourceKind::Project => Room::project(&tenant, &resource_id),
        ResourceKind::Channel => Room::channel(&tenant, &resource_id),
    }
    .map_err(|e| AckError::new("invalid_payload", e.to_string()))?;
    let key = MembershipKey { tenant_id: tenant, kind, resource_id, user_id: identity.user_id };
    Ok((room, key))
}

async fn join(state: &AppState, socket: &SocketRef, data: &Value, kind: ResourceKind) -> AckResult {
    let (room, key) = workspace_room(socket, data, kind)?;
    let membership = directory::find_membership(&state.db, &key).await.map_err(|e| {
        tracing::error!(error = %e, "membership lookup failed");
        AckError::new("unavailable", "the membership directory could not be read")
    })?;
    if membership.is_none() {
        return Err(AckError::new(
            "forbidden",
            format!("you are not a member of {} `{}`", kind.as_str(), key.resource_id),
        ));
    }
    super::recovery::join(state, socket, vec![room.name()]).await;
    let members = state.publisher.member_count(&room).await;
    Ok(fields([("room", json!(room.name())), ("members", json!(members))]))
}

async fn leave(state: &AppState, socket: &SocketRef, data: &Value, kind: ResourceKind) -> AckResult {
    let (room, _) = workspace_room(socket, data, kind)?;
    super::recovery::leave(state, socket, vec![room.name()]).await;
    Ok(fields([("room", json!(room.name()))]))
}

/// Typing indicators reach the channel's other sockets; only a socket in the channel (which
/// membership checked when it joined) may send them.
async fn typing(state: &AppState, socket: &SocketRef, data: &Value, event: EventName) -> AckResult {
    let (room, key) = workspace_room(socket, data, ResourceKind::Channel)?;
    if !in_room(socket, &room) {
        return Err(AckError::new("not_in_room", "join the channel before sending typing indicators"));
    }
    let audience = Audience::except(vec![room], vec![Room::connection(socket.id)]);
    let data = json!({"channelId": key.resource_id, "userId": key.user_id});
    state
        .publisher
        .publish(Publication::ephemeral(event, audience, data, Source::ClientEvent))
        .await
        .map_err(|e| AckError::new("unavailable", e.to_string()))?;
    Ok(fields([]))
}

fn in_room(socket: &SocketRef, room: &Room) -> bool {
    let name = room.name();
    socket.rooms().iter().any(|r| *r == name)
}
