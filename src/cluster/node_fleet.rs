//! What the bus says to Node servers' `@socket.io/redis-adapter` on the same Redis (with
//! `NODE_FLEET`): broadcasts in the adapter's format, requests, and answers to one server's
//! requests. The messages themselves are built by [`crate::fleet`]; the channels are named in
//! [`super::keys`]. These channels are never sharded: Node's adapter publishes with `PUBLISH`.

use super::Bus;
use crate::metrics::RedisFailure;

/// A channel Node servers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChannel<'a> {
    /// Broadcasts: to exactly one room on that room's channel (Node servers read only the rooms
    /// they hold), else on the namespace's.
    Broadcast { one_room: Option<&'a str> },
    /// Requests to every peer (room operations).
    Requests,
    /// Answers to the server whose adapter is this uid.
    Response { uid: &'a str },
}

impl Bus {
    /// Publishes `payload` where Node servers read `channel`. A failure is counted and logged:
    /// the Node servers miss it, Switchyard's own delivery is not touched.
    pub async fn tell_node_servers(&self, channel: NodeChannel<'_>, payload: Vec<u8>) {
        let keys = &self.inner.keys;
        let name = match channel {
            NodeChannel::Broadcast { one_room: Some(room) } => format!("{}{room}#", keys.node_broadcasts()),
            NodeChannel::Broadcast { one_room: None } => keys.node_broadcasts(),
            NodeChannel::Requests => keys.node_requests(),
            NodeChannel::Response { uid } => keys.node_response(uid),
        };
        let published: redis::RedisResult<()> =
            redis::cmd("PUBLISH").arg(&name).arg(payload).query_async(&mut self.connection()).await;
        if let Err(error) = published {
            self.count_failure(RedisFailure::Command);
            tracing::warn!(%error, channel = %name, "redis: a message to the Node servers was lost");
        }
    }
}
