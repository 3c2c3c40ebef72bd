//! Connection: authenticate the handshake, then put the socket in its rooms.

use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::ack::{self, AckError};
use crate::auth::token::find_token;
use crate::auth::{AuthError, Identity};
use crate::directory;
use crate::rooms::Room;
use crate::state::AppState;

pub fn register(state: &AppState) {
    let auth_state = state.clone();
    let authenticate = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = auth_state.clone();
        async move {
            let identity = authenticate(&state, &socket, auth.ok()).await.inspect_err(|e| {
                tracing::info!(sid = %socket.id, code = e.code(), "connection refused");
            })?;
            socket.extensions.insert(identity);
            Ok::<(), AuthError>(())
        }
    };
    state.io.ns("/", on_connect.with(authenticate));
}

/// Finds and verifies the handshake's token; with `AUTH_REQUIRE_USER`, checks the directory.
async fn authenticate(
    state: &AppState,
    socket: &SocketRef,
    auth: Option<Value>,
) -> Result<Identity, AuthError> {
    let parts = socket.req_parts();
    let token = find_token(auth.as_ref(), &parts.headers, parts.uri.query()).ok_or(AuthError::Missing)?;
    let identity = state.tokens.verify(&token)?;
    if state.settings.auth_require_user {
        let user = directory::find_user(&state.db, &identity.user_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "directory lookup failed during authentication");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::UnknownUser)?;
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
    }
    Ok(identity)
}

/// The rooms a socket joins on connect: its user, organization and tenant (when the token
/// names them), and its own id so that a backend can address exactly this socket.
fn home_rooms(identity: &Identity) -> Vec<String> {
    let mut rooms = Vec::with_capacity(3);
    // The token was verified but its ids may still be unusable as room names; such a claim
    // is skipped rather than joined as a malformed room.
    if let Ok(room) = Room::user(&identity.user_id) {
        rooms.push(room.name());
    }
    if let Some(Ok(room)) = identity.organization_id.as_deref().map(Room::org) {
        rooms.push(room.name());
    }
    if let Some(Ok(room)) = identity.tenant_id.as_deref().map(Room::tenant) {
        rooms.push(room.name());
    }
    rooms
}

async fn on_connect(socket: SocketRef) {
    let Some(identity) = socket.extensions.get::<Identity>() else {
        // Unreachable: the middleware always inserts it.
        let _ = socket.disconnect();
        return;
    };
    let mut rooms = home_rooms(&identity);
    rooms.push(socket.id.to_string());
    socket.join(rooms);
    tracing::info!(sid = %socket.id, user = %identity.user_id, "connected");

    socket.on_fallback(unknown_event);
    socket.on_disconnect(|socket: SocketRef, reason: DisconnectReason| async move {
        tracing::info!(sid = %socket.id, %reason, "disconnected");
    });
}

async fn unknown_event(Event(event): Event, ack: AckSender) {
    ack::reply(
        ack,
        Err(AckError::new("unknown_event", format!("this server has no handler for `{event}`"))),
    );
}
