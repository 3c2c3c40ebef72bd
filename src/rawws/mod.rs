//! Plain JSON over WebSocket, for clients that never adopted Socket.IO.
//!
//! - `/ws` (venue channels): client `{type: "subscribe"|"unsubscribe", channel}`, `{type: "ping"}`;
//!   server `{type: "subscribed"|"unsubscribed", channel}`, `{type: "pong"}`, deliveries
//!   `{type: <event>, channel?, data, id, offset?}`, `{type: "error", code, message}`.
//! - `/api/ws` (commerce): deliveries `{type, data}`; every customer is in the `stores` channel,
//!   order updates reach the customer's user room, product updates `store:{id}` subscribers.
//!
//! Both take a token like the sockets do (`?token=`, `Authorization: Bearer`), join the same
//! home rooms, count for presence, and are served by the same publish path through the hub's
//! plain WebSocket registry ([`crate::hub::plain`]).

mod catch_up;
mod connection;
mod messages;
mod outgoing;
mod refusal;

pub use connection::came_due;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(connection::channels_endpoint)).route("/api/ws", get(connection::commerce_endpoint))
}
