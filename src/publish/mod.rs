//! The Publisher: the one road every publication takes, whichever way it came in (HTTP, Redis
//! JSON channels, client events, presence, jobs). In order: pick the rooms that keep history →
//! hand it to the broker, once, which numbers it (history offsets, a recovery log position)
//! and delivers it to the connections of every instance, this one's included (and, with
//! `NODE_FLEET`, to the Node servers' sockets) → record its history (and a user
//! notification's inbox entry) and wait until that is durable.
//!
//! Room operations, member counts, claims and offsets are asked of it too, and go to the
//! broker the same way. The Node emitter's messages, which every instance receives itself, are
//! delivered and applied here only ([`Publisher::deliver_received`]).
//!
//! - [`inbox`]: notifications kept per user, delivered on connect, marked read.
//! - [`request`], [`target`]: the publish request backends send, and the audience it names.

pub mod inbox;
mod request;
mod target;

pub use request::{PublishRequest, checked_event};
pub use target::{FieldError, TargetSpec};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use uuid::Uuid;

use crate::broker::{Broker, Local};
use crate::event::EventName;
use crate::history::History;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::publication::{Offsets, Publication, RoomOp};
use crate::rooms::{Room, RoomError};

/// What the caller learns about an accepted publication.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub id: Uuid,
    pub event: String,
    /// The room names it went to (empty when it went to everyone).
    pub rooms: Vec<String>,
    /// The history offset, when a target room keeps history (the first such room's).
    pub offset: Option<i64>,
    /// Every history offset, by room.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub offsets: BTreeMap<String, i64>,
}

/// Why a publication was not (fully) accepted.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    InvalidTarget(#[from] RoomError),
    /// It was delivered, but its history could not be written.
    #[error("history could not be recorded: {0}")]
    History(String),
}

/// Where publications and room operations are handed on besides the broker: the sockets of
/// Node servers beside Switchyard (`NODE_FLEET`, implemented in the bridge's `fleet`).
#[async_trait::async_trait]
pub trait Mirror: Send + Sync {
    async fn publication(&self, publication: &Publication);
    async fn room_op(&self, op: &RoomOp);
}

/// Delivers publications. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Parts>,
}

/// What a [`Publisher`] works with.
pub struct Parts {
    /// Numbers and delivers, on this instance or across the cluster.
    pub broker: Arc<dyn Broker>,
    /// This instance's connections, for what every instance receives by itself.
    pub local: Local,
    pub history: Arc<History>,
    /// Whether an addressed user is online, for a notification's inbox entry.
    pub presence: Arc<Presence>,
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    /// Node servers on the same Redis (`NODE_FLEET`), which get what is published here too.
    pub mirror: Option<Arc<dyn Mirror>>,
}

impl Publisher {
    pub fn new(parts: Parts) -> Self {
        Publisher { inner: Arc::new(parts) }
    }

    /// The single road out (see the module doc).
    #[tracing::instrument(skip_all, fields(id = %publication.id, event = %publication.event, source = ?publication.source))]
    pub async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
        let inner = &self.inner;
        // Shared with the broker (on Redis, kept until its channel brings it back).
        let publication = Arc::new(publication);
        inner.metrics.published(publication.source);
        let history_rooms: Vec<&Room> =
            publication.audience.rooms.iter().filter(|r| !publication.ephemeral && inner.history.keeps(r)).collect();
        let numbered = inner.broker.publish(&publication, &history_rooms).await;
        if let Some(mirror) = &inner.mirror {
            mirror.publication(&publication).await;
        }
        let offsets = numbered.map_err(|e| PublishError::History(e.to_string()))?;
        self.record(&publication, &offsets).await?;
        Ok(Receipt {
            id: publication.id,
            event: publication.event.to_string(),
            rooms: publication.audience.room_names(),
            offset: offsets.first().map(|(_, o)| *o),
            offsets: offsets.into_iter().collect(),
        })
    }

    /// Delivers a publication that every instance received by itself (the Node emitter's): to
    /// this instance's connections only; not numbered, not recorded.
    pub async fn deliver_received(&self, publication: &Publication) {
        self.inner.metrics.published(publication.source);
        self.inner.local.deliver(publication, &[], None).await;
    }

    /// Applies a room operation to the audience's connections on every instance (this one alone
    /// without Redis, or while Redis is down).
    pub async fn apply(&self, op: RoomOp) {
        if let Some(mirror) = &self.inner.mirror {
            mirror.room_op(&op).await;
        }
        self.inner.broker.apply(op).await;
    }

    /// Applies a room operation every instance received by itself (the Node emitter's
    /// requests) to this instance's connections.
    pub async fn apply_received(&self, op: &RoomOp) {
        self.inner.local.apply(op, self.inner.broker.as_ref()).await;
    }

    /// Connections (sockets and plain WebSockets) in `room`, on every instance that answers.
    pub async fn member_count(&self, room: &Room) -> usize {
        self.inner.broker.member_count(room).await
    }

    /// True for one instance of the cluster that claims `name` within `ttl` (always true on a
    /// single instance).
    pub async fn claim(&self, name: &str, ttl: Duration) -> bool {
        self.inner.broker.claim(name, ttl).await
    }

    /// The last history offset handed out in `room`, by any instance that answers.
    pub async fn last_offset(&self, room: &Room) -> i64 {
        self.inner.broker.last_offset(room).await
    }

    /// Makes the history (and a user notification's inbox entries) durable.
    async fn record(&self, publication: &Publication, offsets: &Offsets) -> Result<(), PublishError> {
        let is_notification = !publication.ephemeral && publication.event == EventName::NOTIFICATION_NEW;
        if offsets.is_empty() && !is_notification {
            return Ok(());
        }
        let data = publication.json().to_string();
        if !offsets.is_empty() {
            self.inner
                .history
                .record(
                    offsets,
                    &publication.id.to_string(),
                    publication.event.as_str(),
                    &data,
                    publication.published_at,
                )
                .await
                .map_err(PublishError::History)?;
            self.inner.metrics.history_written(offsets.len());
        }
        if is_notification {
            self.keep_notification(publication, &data).await?;
        }
        Ok(())
    }

    /// Keeps a user notification in each addressed user's inbox.
    async fn keep_notification(&self, publication: &Publication, data: &str) -> Result<(), PublishError> {
        let mut users: Vec<(String, bool)> = Vec::new();
        for room in &publication.audience.rooms {
            if let Room::User(u) = room {
                users.push((u.clone(), self.inner.presence.is_online(u).await));
            }
        }
        let id = inbox::notification_id(publication.json(), &publication.id.to_string());
        inbox::keep(&self.inner.db, &users, &id, data, publication.published_at)
            .await
            .map_err(|e| PublishError::History(e.to_string()))
    }
}
