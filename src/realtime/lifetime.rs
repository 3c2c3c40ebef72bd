//! A socket's token lifetime: at `exp` the socket gets `auth:expired {expiredAt}` and is
//! disconnected by the server (the client sees `io server disconnect`, so it does not reconnect
//! with the dead token); `TOKEN_EXPIRY_NOTICE` before, `auth:expiring {expiresAt}`. Before that,
//! `auth:refresh {token}` replaces the token: a token of the same user, valid, moves the socket's
//! deadline and, when its organization or tenant changed, its home rooms.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

use super::ack::AckError;
use super::{AckResult, fields, identity};
use crate::auth::Identity;
use crate::event::EventName;
use crate::lifetime::{Conn, Due};
use crate::sessions::digest;
use crate::state::AppState;

/// Binds a new socket to its token's expiry.
pub fn bind(state: &AppState, socket: &SocketRef, identity: &Identity) {
    state.lifetimes.bind(Conn::Socket(socket.id.to_string()), identity.expires_at);
}

pub fn forget(state: &AppState, socket: &SocketRef) {
    state.lifetimes.forget(&Conn::Socket(socket.id.to_string()));
}

/// Acts on a deadline of a socket of this instance.
pub fn came_due(state: &AppState, due: &Due) {
    let (Due::Expiring(Conn::Socket(sid), at) | Due::Expired(Conn::Socket(sid), at)) = due else { return };
    let Some(socket) = sid.parse().ok().and_then(|sid| state.hub.socket(sid)) else { return };
    let when = time(*at);
    match due {
        Due::Expiring(..) => {
            let _ = socket.emit(EventName::AUTH_EXPIRING.as_str(), &json!({"expiresAt": when}));
        }
        Due::Expired(..) => {
            tracing::info!(socket = %digest(socket.id), "token expired: disconnecting");
            let _ = socket.emit(EventName::AUTH_EXPIRED.as_str(), &json!({"expiredAt": when}));
            let _ = socket.disconnect();
        }
    }
}

fn time(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339()
}

/// `auth:refresh {token}` → `{ok: true, expiresAt}`; nothing changes on a refusal.
pub async fn refresh(state: AppState, socket: SocketRef, data: Value) -> AckResult {
    let current = identity(&socket)?;
    let token = data
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| AckError::new("invalid_payload", "give {token: \"<the new JWT>\"}"))?;
    let renewal = state.renew(&current, token).await.map_err(|e| AckError::new(e.code(), e.to_string()))?;
    let (renewed, gone) = (renewal.identity, renewal.gone);
    state.hub.drop_filters(&socket, Some(&gone));
    socket.leave(gone);
    socket.join(renewal.added);
    socket.extensions.insert(renewed.clone());
    bind(&state, &socket, &renewed);
    Ok(fields([("expiresAt", json!(time(renewed.expires_at)))]))
}
