//! What Node servers ask of this instance's Socket.IO sockets when it is their adapter's peer
//! (`NODE_FLEET`, see [`crate::bridge::fleet`]): which sockets an audience holds, which rooms have one,
//! and an event whose acknowledgements come back one by one. Plain WebSocket connections are
//! not Socket.IO sockets and are never listed.

use std::time::Duration;

use socketioxide::ack::AckStream;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::SocketRef;

use super::Hub;
use crate::publication::{Audience, SpreadArgs};
use crate::rooms;

/// The acknowledgements of an event sent to sockets, as they come.
pub type Acks = AckStream<rmpv::Value, LocalAdapter>;

impl Hub {
    /// The local sockets of an audience.
    pub fn sockets_in(&self, audience: &Audience) -> Vec<SocketRef> {
        self.select(audience).map(|s| s.sockets()).unwrap_or_default()
    }

    /// The Socket.IO rooms with a socket here, Switchyard's own bookkeeping rooms left out.
    pub async fn socket_rooms(&self) -> Vec<String> {
        let Some(main) = self.main() else { return Vec::new() };
        let rooms = main.rooms().await.unwrap_or_default();
        rooms.into_iter().map(|r| r.to_string()).filter(|r| !rooms::is_bookkeeping(r)).collect()
    }

    /// Sends the sockets of an audience an event that asks for an acknowledgement within
    /// `timeout`: how many were sent it, and their acknowledgements (the first argument of each).
    pub async fn emit_with_acks(
        &self,
        audience: &Audience,
        event: &str,
        args: &[rmpv::Value],
        timeout: Duration,
    ) -> (usize, Option<Acks>) {
        let Some(selection) = self.select(audience) else { return (0, None) };
        let count = selection.clone().sockets().len();
        match selection.timeout(timeout).emit_with_ack(event, &SpreadArgs(args)).await {
            Ok(acks) => (count, Some(acks)),
            Err(error) => {
                tracing::warn!(%error, event, "an event asking for acknowledgements could not be sent");
                (count, None)
            }
        }
    }
}
