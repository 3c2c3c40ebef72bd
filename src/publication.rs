//! What travels the road: a [`Publication`] (one event for one [`Audience`]) and a [`RoomOp`]
//! (connections join or leave rooms, or are disconnected). Every way in builds one of these;
//! the Publisher numbers, hands on and records them; the hub applies them to this instance's
//! connections. Plain data: nothing here talks to Redis, a socket or the database.

use chrono::{DateTime, Utc};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::EventName;
use crate::rooms::Room;

/// Where a publication came from; recorded for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Http,
    RedisJson,
    Emitter,
    ClientEvent,
    Presence,
    Job,
    /// The admin UI's `emit` command.
    Admin,
    /// A Node server's broadcast, through its `@socket.io/redis-adapter` (`NODE_FLEET`).
    NodeServer,
    /// Received from another instance.
    Cluster,
}

/// What a publication carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// One JSON value: what every way in but the Node emitter sends.
    Json(Value),
    /// The Node emitter's arguments as it sent them (any number, binary kept binary), for
    /// Socket.IO; `json` is the one argument plain WebSocket clients can read, when there is
    /// exactly one and it holds no binary. Delivered where received, never numbered or recorded.
    Emitted { args: Vec<rmpv::Value>, json: Option<Value> },
}

/// Arguments serialized as a tuple, which Socket.IO sends as separate arguments (the Node
/// emitter's, or the admin UI's events).
pub struct SpreadArgs<'a, T = rmpv::Value>(pub &'a [T]);

impl<T: Serialize> Serialize for SpreadArgs<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

impl Payload {
    /// The payload as one JSON value, when it has that form.
    pub fn json(&self) -> Option<&Value> {
        match self {
            Payload::Json(value) => Some(value),
            Payload::Emitted { json, .. } => json.as_ref(),
        }
    }
}

/// The history offsets a publication was recorded at, by room (what `/ws` frames carry as
/// `offset`, and what the cluster bus numbers).
pub type Offsets = Vec<(String, i64)>;

/// One event for one audience.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Time-ordered (UUIDv7), so ids sort like publications.
    pub id: Uuid,
    pub event: EventName,
    pub audience: Audience,
    pub data: Payload,
    pub source: Source,
    pub published_at: DateTime<Utc>,
    /// Signals of the moment (typing, presence, read receipts): delivered, never recorded.
    pub ephemeral: bool,
}

impl Publication {
    pub fn new(event: EventName, audience: Audience, data: Value, source: Source) -> Self {
        Publication {
            id: Uuid::now_v7(),
            event,
            audience,
            data: Payload::Json(data),
            source,
            published_at: Utc::now(),
            ephemeral: false,
        }
    }

    /// A publication that skips history and the inbox.
    pub fn ephemeral(event: EventName, audience: Audience, data: Value, source: Source) -> Self {
        Publication { ephemeral: true, ..Publication::new(event, audience, data, source) }
    }

    /// The JSON data (`null` for emitter arguments that have no JSON form).
    pub fn json(&self) -> &Value {
        self.data.json().unwrap_or(&Value::Null)
    }
}

/// Which connections something is for: everyone or the members of `rooms`, less the members of
/// `except`. A connection in several of the rooms counts once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Every connection (then `rooms` is empty).
    pub everyone: bool,
    pub rooms: Vec<Room>,
    pub except: Vec<Room>,
}

impl Audience {
    pub fn rooms(rooms: Vec<Room>) -> Self {
        Audience { everyone: false, rooms, except: Vec::new() }
    }

    /// The members of `rooms` but those in `except`.
    pub fn except(rooms: Vec<Room>, except: Vec<Room>) -> Self {
        Audience { everyone: false, rooms, except }
    }

    /// Raw room names as a backend gives them (the Node emitter): no rooms means everyone. A
    /// name that is not a valid [`Room`] is still addressed by its bare name, as Node would.
    pub fn from_names(rooms: &[String], except: &[String]) -> Self {
        let parse = |names: &[String]| {
            names.iter().map(|n| Room::parse(n).unwrap_or_else(|_| Room::Named(n.clone()))).collect()
        };
        Audience { everyone: rooms.is_empty(), rooms: parse(rooms), except: parse(except) }
    }

    pub fn room_names(&self) -> Vec<String> {
        self.rooms.iter().map(Room::name).collect()
    }

    pub fn except_names(&self) -> Vec<String> {
        self.except.iter().map(Room::name).collect()
    }
}

/// A change to the connections of an audience, applied by every instance to its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOp {
    pub target: Audience,
    pub action: RoomAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "rooms", rename_all = "camelCase")]
pub enum RoomAction {
    /// Put them in these rooms too.
    Join(Vec<String>),
    /// Take them out of these rooms.
    Leave(Vec<String>),
    /// Close their connections (the server's decision, so clients do not reconnect blindly).
    Disconnect,
    /// Close their connections because the directory revoked the user (deleted, unverified).
    Revoke,
}
