//! Socket.IO: who may connect, which rooms a socket lands in, and the client events.
//!
//! - [`connect`]: the authentication middleware, the connect handler (rooms of SPEC R1),
//!   presence, and the registration of every client event below.
//! - [`invitations`]: `watch-invitation`, `unwatch-invitation`.
//! - [`workspace`]: `join-project`, `leave-project`, `join-channel`, `leave-channel`,
//!   `typing:start`, `typing:stop`, `room:members`.
//! - [`channels`]: `subscribe`, `unsubscribe` to public channels (`venue:42`, `stores`, ...).
//! - [`notifications`]: the inbox on connect, `notification:read`.
//! - [`ack`]: the `{ok, ...}` envelope every client event answers its ack callback with.
//!
//! Each client event is one `async fn(AppState, SocketRef, Value) -> Result<Map, AckError>`;
//! [`on`] parses nothing itself, answers the ack from the result, and logs refusals.

pub mod ack;
mod channels;
pub(crate) mod connect;
mod invitations;
mod notifications;
mod workspace;

use std::future::Future;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};

use self::ack::AckError;
use crate::auth::Identity;
use crate::state::AppState;

/// Registers the default namespace on the application's Socket.IO server.
pub fn attach(state: &AppState) {
    connect::register(state);
}

/// What a client event handler answers: extra fields of `{ok: true, ...}`, or a refusal.
pub type AckResult = Result<Map<String, Value>, AckError>;

/// Registers `handler` for `event` on `socket`, answering the client's ack with its result.
fn on<F, Fut>(socket: &SocketRef, state: &AppState, event: &'static str, handler: F)
where
    F: Fn(AppState, SocketRef, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = AckResult> + Send + 'static,
{
    let state = state.clone();
    socket.on(
        event,
        move |socket: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let state = state.clone();
            let handler = handler.clone();
            async move {
                let result = match data {
                    Ok(data) => handler(state, socket.clone(), data).await,
                    Err(e) => Err(AckError::new("invalid_payload", format!("unreadable payload: {e}"))),
                };
                if let Err(e) = &result {
                    tracing::debug!(sid = %socket.id, event, code = e.code, "client event refused");
                }
                ack::reply(ack, result);
            }
        },
    );
}

/// The identity the connect middleware stored on the socket.
fn identity(socket: &SocketRef) -> Result<Identity, AckError> {
    socket
        .extensions
        .get::<Identity>()
        .ok_or_else(|| AckError::new("unauthenticated", "this socket has no identity"))
}

/// Reads a payload into `T`; a mismatch is refused with serde's description (it names the field).
fn payload<T: DeserializeOwned>(data: Value) -> Result<T, AckError> {
    serde_json::from_value(data).map_err(|e| AckError::new("invalid_payload", e.to_string()))
}

/// Builds the `{ok: true, ...}` fields from pairs.
fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
