//! Socket.IO: who may connect, which rooms a socket lands in, and the client events.
//!
//! - [`connect`]: the authentication middleware and the connect handler (rooms of SPEC R1).
//! - [`ack`]: the `{ok, ...}` envelope every client event answers its ack callback with.

pub mod ack;
mod connect;

use crate::state::AppState;

/// Registers the default namespace on the application's Socket.IO server.
pub fn attach(state: &AppState) {
    connect::register(state);
}
