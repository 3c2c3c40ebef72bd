//! Socket.IO: who may connect, which rooms a socket lands in, and the client events.
//!
//! - [`connect`]: the authentication middleware, the connect handler (rooms of SPEC R1),
//!   presence, and the registration of every client event below.
//! - [`invitations`]: `watch-invitation`, `unwatch-invitation`.
//! - [`workspace`]: `join-project`, `leave-project`, `join-channel`, `leave-channel`,
//!   `typing:start`, `typing:stop`, `room:members`.
//! - [`channels`]: `subscribe`, `unsubscribe` to public channels (`venue:42`, `stores`, ...).
//! - [`notifications`]: the inbox on connect, `notification:read`.
//! - [`lifetime`]: the token's expiry (`auth:expiring`, `auth:expired`), `auth:refresh`.
//! - [`ack`]: the `{ok, ...}` envelope every client event answers its ack callback with.
//!
//! Each client event is one `async fn(AppState, SocketRef, Value) -> Result<Map, AckError>`,
//! named in [`handler`]; [`answer`] parses nothing itself, answers the ack from the result, and
//! logs refusals.

pub mod ack;
mod channels;
pub(crate) mod connect;
mod invitations;
pub mod lifetime;
mod notifications;
pub mod recovery;
mod workspace;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef};

use self::ack::AckError;
use crate::auth::Identity;
use crate::limits::Bucket;
use crate::metrics::Refusal;
use crate::sessions::digest;
use crate::state::AppState;

/// Registers the default namespace on the application's Socket.IO server.
pub fn attach(state: &AppState, io: &SocketIo) {
    connect::register(state, io);
}

/// What a client event handler answers: extra fields of `{ok: true, ...}`, or a refusal.
pub type AckResult = Result<Map<String, Value>, AckError>;

/// Answers one client event: routes it to its handler by name and replies to the client's ack
/// with the result (`unknown_event` for a name no handler has).
///
/// One handler per socket dispatches every event: socketioxide boxes each handler a socket
/// registers, and twelve of them took about 2 KB per connection (heaptrack; bench/README).
async fn answer(state: AppState, socket: SocketRef, event: String, data: Result<Value, String>, ack: AckSender) {
    let over_limit = socket.extensions.get::<std::sync::Arc<Bucket>>().is_some_and(|b| !b.take());
    if over_limit {
        state.metrics.rate_limited();
    }
    let result = match (handler(&event), data) {
        _ if over_limit => Err(AckError::new("rate_limited", "too many events; slow down (CLIENT_EVENT_RATE)")),
        (None, _) => Err(AckError::new("unknown_event", format!("this server has no handler for `{event}`"))),
        (Some(_), Err(e)) => Err(AckError::new("invalid_payload", format!("unreadable payload: {e}"))),
        (Some(handler), Ok(data)) => handler(state.clone(), socket.clone(), data).await,
    };
    if let Err(e) = &result {
        tracing::debug!(socket = %digest(socket.id), event, code = e.code, "client event refused");
    }
    if !ack::reply(ack, result) {
        // More events than answers the send queue holds (thousands in one polling POST): each
        // must be answered, so the client is cut rather than left waiting on the ones dropped.
        state.metrics.refused(Refusal::AckOverflow);
        state.hub.cut(&socket, "ack_overflow: more client events than their answers fit in the send queue");
    }
}

type Handler = fn(AppState, SocketRef, Value) -> BoxFuture<'static, AckResult>;

/// The client events and their handlers.
fn handler(event: &str) -> Option<Handler> {
    Some(match event {
        "watch-invitation" => |a, s, d| Box::pin(invitations::watch(a, s, d)),
        "unwatch-invitation" => |a, s, d| Box::pin(invitations::unwatch(a, s, d)),
        "join-project" => |a, s, d| Box::pin(workspace::join_project(a, s, d)),
        "leave-project" => |a, s, d| Box::pin(workspace::leave_project(a, s, d)),
        "join-channel" => |a, s, d| Box::pin(workspace::join_channel(a, s, d)),
        "leave-channel" => |a, s, d| Box::pin(workspace::leave_channel(a, s, d)),
        "typing:start" => |a, s, d| Box::pin(workspace::typing_start(a, s, d)),
        "typing:stop" => |a, s, d| Box::pin(workspace::typing_stop(a, s, d)),
        "room:members" => |a, s, d| Box::pin(workspace::room_members(a, s, d)),
        "subscribe" => |a, s, d| Box::pin(channels::subscribe(a, s, d)),
        "unsubscribe" => |a, s, d| Box::pin(channels::unsubscribe(a, s, d)),
        "filter" => |a, s, d| Box::pin(channels::filter(a, s, d)),
        "notification:read" => |a, s, d| Box::pin(notifications::read(a, s, d)),
        "auth:refresh" => |a, s, d| Box::pin(lifetime::refresh(a, s, d)),
        _ => return None,
    })
}

/// The identity the connect middleware stored on the socket.
fn identity(socket: &SocketRef) -> Result<Identity, AckError> {
    socket.extensions.get::<Identity>().ok_or_else(|| AckError::new("unauthenticated", "this socket has no identity"))
}

/// Reads a payload into `T`; a mismatch is refused with serde's description (it names the field).
fn payload<T: DeserializeOwned>(data: Value) -> Result<T, AckError> {
    serde_json::from_value(data).map_err(|e| AckError::new("invalid_payload", e.to_string()))
}

/// Builds the `{ok: true, ...}` fields from pairs.
fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_client_event_of_the_catalogue_has_its_handler() {
        let catalogue = crate::catalogue::Catalogue::builtin();
        let names: Vec<&str> = catalogue.client_events().collect();
        assert_eq!(names.len(), 14, "{names:?}");
        for name in names {
            assert!(super::handler(name).is_some(), "{name}");
        }
    }
}
