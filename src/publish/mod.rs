//! The publish path: every way in (HTTP, Redis, the Node emitter, client events, jobs) turns
//! what it received into one [`Publication`] and hands it to [`Publisher::publish`].
//!
//! The path is: the way in has already authorized the caller (API key, room membership) →
//! history, for rooms that keep it → delivery to the Socket.IO rooms of this instance.
//! Later stages (plain-WebSocket subscribers, cross-instance fan-out) hang on the same function,
//! so no way in ever talks to the adapter directly.

mod event;
mod request;
mod target;

pub use event::{EventError, EventName};
pub use request::{PublishRequest, checked_event};
pub use target::{Audience, FieldError, TargetSpec};

use chrono::{DateTime, Utc};
use serde::Serialize;
use socketioxide::SocketIo;
use uuid::Uuid;

/// Where a publication came from; recorded for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Http,
    RedisJson,
    Emitter,
    ClientEvent,
    Job,
}

/// One event for one audience.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Time-ordered (UUIDv7), so ids sort like publications.
    pub id: Uuid,
    pub event: EventName,
    pub audience: Audience,
    pub data: serde_json::Value,
    pub source: Source,
    pub published_at: DateTime<Utc>,
}

impl Publication {
    pub fn new(event: EventName, audience: Audience, data: serde_json::Value, source: Source) -> Self {
        Publication {
            id: Uuid::now_v7(),
            event,
            audience,
            data,
            source,
            published_at: Utc::now(),
        }
    }
}

/// What the caller learns about an accepted publication.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub id: Uuid,
    pub event: String,
    /// The room names it went to (empty when it went to everyone).
    pub rooms: Vec<String>,
    /// The history offset, when the target room keeps history.
    pub offset: Option<i64>,
}

/// Delivers publications. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Publisher {
    io: SocketIo,
}

impl Publisher {
    pub fn new(io: SocketIo) -> Self {
        Publisher { io }
    }

    /// The single road out. Returns once the publication is handed to every local socket's
    /// send queue.
    #[tracing::instrument(skip_all, fields(id = %publication.id, event = %publication.event, source = ?publication.source))]
    pub async fn publish(&self, publication: Publication) -> Receipt {
        self.deliver_to_sockets(&publication).await;
        Receipt {
            id: publication.id,
            event: publication.event.to_string(),
            rooms: publication.audience.rooms.iter().map(|r| r.name()).collect(),
            offset: None,
        }
    }

    async fn deliver_to_sockets(&self, publication: &Publication) {
        let audience = &publication.audience;
        let operators = if audience.everyone {
            self.io.broadcast()
        } else {
            self.io.to(audience.room_names())
        };
        let result = operators
            .except(audience.except_names())
            .emit(publication.event.as_str(), &publication.data)
            .await;
        // A socket whose queue is closed or full is on its way out; the others got it.
        if let Err(error) = result {
            tracing::debug!(%error, "some sockets could not be reached");
        }
    }
}
