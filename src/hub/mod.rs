//! The hub: this instance's connections, both protocols: the Socket.IO sockets (through
//! socketioxide's local adapter) and the plain WebSocket connections ([`plain`]). It delivers a
//! publication to the members of its audience, applies room operations, and counts; it never
//! numbers, records or talks to Redis. Only the Publisher delivers through it (as centrifuge's
//! Hub is reached through its Node); connection handlers use it for their own bookkeeping.

pub mod plain;

use serde::Serialize;
use serde::ser::SerializeTuple;
use socketioxide::SocketIo;
use socketioxide::operators::BroadcastOperators;

use self::plain::{Offsets, PlainConnections};
use crate::publication::{Audience, Payload, Publication, RoomAction, RoomOp};

pub struct Hub {
    /// The Socket.IO server: its sockets and their rooms.
    sockets: SocketIo,
    /// The plain WebSocket connections (`/ws`, `/api/ws`) and their rooms.
    plain: PlainConnections,
}

impl Hub {
    pub fn new(sockets: SocketIo) -> Self {
        Hub {
            sockets,
            plain: PlainConnections::default(),
        }
    }

    /// The plain WebSocket registry, for the connections' own bookkeeping (register, join).
    pub fn plain(&self) -> &PlainConnections {
        &self.plain
    }

    /// Delivers to every local connection in the audience, once each. `offsets` are the
    /// publication's history offsets by room (plain `/ws` frames carry their channel's).
    pub async fn deliver(&self, publication: &Publication, offsets: Offsets<'_>) {
        let sockets = self.select(&publication.audience);
        let event = publication.event.as_str();
        let result = match &publication.data {
            Payload::Json(data) => sockets.emit(event, data).await,
            Payload::Emitted { args, .. } => sockets.emit(event, &Args(args)).await,
        };
        // A closed socket is on its way out; a full queue means a client far behind, which
        // loses this delivery (socketioxide does not say which socket it was).
        match result {
            Err(socketioxide::BroadcastError::Socket(errors)) => {
                let full = errors
                    .iter()
                    .filter(|e| matches!(e, socketioxide::SocketError::InternalChannelFull))
                    .count();
                if full > 0 {
                    tracing::warn!(full, event, "delivery dropped for sockets whose send queue is full");
                }
            }
            Err(error) => tracing::warn!(%error, "delivery failed"),
            Ok(()) => {}
        }
        self.plain.deliver(publication, offsets);
    }

    /// Applies a room operation to the local connections of its audience.
    pub async fn apply(&self, op: &RoomOp) {
        let sockets = self.select(&op.target);
        let result = match &op.action {
            RoomAction::Join(rooms) => sockets.join(rooms.clone()).await.map_err(|e| e.to_string()),
            RoomAction::Leave(rooms) => sockets.leave(rooms.clone()).await.map_err(|e| e.to_string()),
            RoomAction::Disconnect => sockets.disconnect().await.map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, action = ?op.action, "room operation failed for some sockets");
        }
        self.plain.apply(&op.target, &op.action);
    }

    /// Local connections (sockets and plain WebSockets) in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.sockets.within(room.to_owned()).sockets().len() + self.plain.members(room)
    }

    /// Local connections of both protocols.
    pub fn connections(&self) -> usize {
        self.sockets.sockets().len() + self.plain.connections()
    }

    /// Socket.IO rooms that have a member here.
    pub async fn rooms(&self) -> usize {
        self.sockets.rooms().await.map(|r| r.len()).unwrap_or(0)
    }

    /// Closes every socket (at shutdown; plain connections close on the shutdown token).
    pub async fn close(&self) {
        self.sockets.close().await;
    }

    /// The sockets of an audience: the one place rooms and exceptions become a selection.
    fn select(&self, audience: &Audience) -> BroadcastOperators<socketioxide::adapter::LocalAdapter> {
        let operators = if audience.everyone {
            self.sockets.broadcast()
        } else {
            self.sockets.to(audience.room_names())
        };
        operators.except(audience.except_names())
    }
}

/// Emitter arguments serialized as a tuple, which Socket.IO sends as separate arguments.
struct Args<'a>(&'a [rmpv::Value]);

impl Serialize for Args<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}
