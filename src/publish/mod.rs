//! The Publisher: the one road every publication takes, whichever way it came in (HTTP, Redis
//! JSON channels, client events, presence, jobs). In order: number it in each room that keeps
//! history and, unless it is ephemeral, in the recovery log → hand it to the cluster bus, which
//! brings it back to every instance (or, without Redis or while Redis is down, deliver it here)
//! → deliver it to this instance's Socket.IO sockets and plain WebSocket connections through the
//! [`Hub`] → record its history (and a user notification's inbox entry) and wait until that is
//! durable.
//!
//! The Publisher is the only holder of the hub: room operations, member counts and status
//! counts are asked of it too. The Node emitter's messages, which every instance receives
//! itself, take the same local delivery ([`Publisher::deliver_received`]).
//!
//! - [`history`]: offsets, group-committed writes, reads for polling, retention.
//! - [`inbox`]: notifications kept per user, delivered on connect, marked read.
//! - [`request`], [`target`]: the publish request backends send, and the audience it names.

pub mod history;
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

use self::history::History;
use crate::cluster::deliver::SendError;
use crate::cluster::{self, Bus, Numbered};
use crate::event::EventName;
use crate::hub::Hub;
use crate::metrics::{Metrics, RedisFailure};
use crate::presence::Presence;
use crate::publication::{Offsets, Publication, RoomOp};
use crate::recovery::{Position, Recovery};
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

/// Counts for the status endpoint (no names: room names would reveal user ids).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Status {
    pub connections: usize,
    pub rooms: usize,
    pub redis: &'static str,
}

/// Delivers publications. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Parts>,
}

/// What a [`Publisher`] works with.
pub struct Parts {
    pub hub: Hub,
    pub history: Arc<History>,
    /// Whether an addressed user is online, for a notification's inbox entry.
    pub presence: Arc<Presence>,
    pub db: DatabaseConnection,
    /// The cluster, when Redis is configured.
    pub bus: Option<Bus>,
    /// The recovery log and sessions (in the bus, or this instance's memory).
    pub recovery: Arc<Recovery>,
    pub metrics: Arc<Metrics>,
}

impl Publisher {
    pub fn new(parts: Parts) -> Self {
        Publisher { inner: Arc::new(parts) }
    }

    /// The single road out (see the module doc).
    #[tracing::instrument(skip_all, fields(id = %publication.id, event = %publication.event, source = ?publication.source))]
    pub async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
        let inner = &self.inner;
        // Shared with the cluster bus, which keeps it until the channel brings it back.
        let publication = Arc::new(publication);
        inner.metrics.published(publication.source);
        let history_rooms: Vec<&Room> =
            publication.audience.rooms.iter().filter(|r| !publication.ephemeral && inner.history.keeps(r)).collect();
        let offsets = match &inner.bus {
            Some(bus) => match self.send_to_cluster(bus, &publication, &history_rooms).await {
                Ok(offsets) => offsets,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unreachable: delivering on this instance only");
                    inner.metrics.redis_failed(RedisFailure::Command);
                    bus.set_disconnected();
                    let offsets = self.deliver_here(&publication, &history_rooms).await?;
                    bus.numbered_alone(&offsets);
                    offsets
                }
            },
            None => self.deliver_here(&publication, &history_rooms).await?,
        };
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
        let delivered = self.inner.hub.deliver(publication, &[], None).await;
        self.inner.metrics.delivered(delivered, since(publication));
    }

    /// Applies a room operation to the audience's connections on every instance (this one alone
    /// without Redis, or while Redis is down).
    pub async fn apply(&self, op: RoomOp) {
        if let Some(bus) = &self.inner.bus {
            match bus.room_op(&op).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unreachable: applying the room operation on this instance only");
                    self.inner.metrics.redis_failed(RedisFailure::Command);
                }
            }
        }
        self.inner.hub.apply(&op).await;
    }

    /// Applies a room operation every instance received by itself (the Node emitter's
    /// requests) to this instance's connections.
    pub async fn apply_received(&self, op: &RoomOp) {
        self.inner.hub.apply(op).await;
    }

    /// Connections (sockets and plain WebSockets) in `room`, on every instance that answers.
    pub async fn member_count(&self, room: &Room) -> usize {
        let name = room.name();
        let local = self.inner.hub.count(&name);
        let Some(bus) = &self.inner.bus else { return local };
        match bus.remote_count(&name).await {
            Ok(remote) => local + remote,
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable: counting this instance only");
                self.inner.metrics.redis_failed(RedisFailure::Command);
                local
            }
        }
    }

    /// True for one instance of the cluster that claims `name` within `ttl` (always true on a
    /// single instance).
    pub async fn claim(&self, name: &str, ttl: Duration) -> bool {
        match &self.inner.bus {
            Some(bus) => bus.claim(name, ttl).await,
            None => true,
        }
    }

    /// The last history offset handed out in `room`, by any instance that answers.
    pub async fn last_offset(&self, room: &Room) -> i64 {
        let name = room.name();
        let here = self.known_last(&name).await.unwrap_or(0);
        match &self.inner.bus {
            Some(bus) => bus.room_offset(&name).await.unwrap_or(0).max(here),
            None => here,
        }
    }

    /// This instance's connections, rooms, and the state of its Redis link.
    pub async fn status(&self) -> Status {
        Status {
            connections: self.inner.hub.connections(),
            rooms: self.inner.hub.rooms().await,
            redis: match &self.inner.bus {
                None => "disabled",
                Some(bus) if bus.is_connected() => "connected",
                Some(_) => "disconnected",
            },
        }
    }

    /// The hub, for connections' own bookkeeping (registering, joining). Delivery goes through
    /// [`Publisher::publish`].
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn history(&self) -> &Arc<History> {
        &self.inner.history
    }

    pub fn recovery(&self) -> &Arc<Recovery> {
        &self.inner.recovery
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Numbers and delivers on this instance alone (single instance, or Redis down).
    async fn deliver_here(&self, publication: &Publication, history_rooms: &[&Room]) -> Result<Offsets, PublishError> {
        let tickets =
            self.inner.history.tickets(history_rooms).await.map_err(|e| PublishError::History(e.to_string()))?;
        let offsets: Offsets = tickets.iter().map(|t| (t.room.clone(), t.offset)).collect();
        let hub = &self.inner.hub;
        // Positioned and handed to the tracked sockets while the log is held (in order).
        let logged = match publication.ephemeral {
            true => None,
            false => self.inner.recovery.log_locally(publication, |p| hub.deliver_tracked(publication, Some(p))),
        };
        let tracked = logged.unwrap_or_else(|| hub.deliver_tracked(publication, None));
        let untracked = hub.deliver_untracked(publication, &offsets).await;
        self.inner.metrics.delivered(tracked + untracked, since(publication));
        // Delivered in offset order: the next publication to these rooms may go.
        drop(tickets);
        Ok(offsets)
    }

    /// Numbers the publication in Redis and sends it to every instance, this one included (the
    /// bus hands it back to [`cluster::Handler::deliver`]).
    async fn send_to_cluster(
        &self,
        bus: &Bus,
        publication: &Arc<Publication>,
        history_rooms: &[&Room],
    ) -> Result<Offsets, String> {
        let names: Vec<String> = history_rooms.iter().map(|r| r.name()).collect();
        let mut floors = Vec::with_capacity(names.len());
        for (room, needed) in names.iter().zip(bus.needs_floor(&names)) {
            floors.push(if needed { self.known_last(room).await? } else { -1 });
        }
        let numbered = match bus.send(publication, &names, &floors).await {
            Err(SendError::Unseeded) => {
                // Redis lost its counters: continue from what this instance and the database know.
                let mut floors = Vec::with_capacity(names.len());
                for room in &names {
                    floors.push(self.known_last(room).await?);
                }
                bus.send(publication, &names, &floors).await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        for (room, offset) in &numbered.offsets {
            self.inner.history.observe(room, *offset).await;
        }
        if !bus.is_connected() && bus.take_sent(publication.id).is_some() {
            // Our own subscriber is between connections and has not brought it back: deliver here.
            cluster::Handler::deliver(self, publication, numbered.clone()).await;
        }
        Ok(numbered.offsets)
    }

    /// The highest offset of `room` this instance or the database knows.
    async fn known_last(&self, room: &str) -> Result<i64, String> {
        let history = &self.inner.history;
        let recorded = history.last_offset(room).await.map_err(|e| e.to_string())?;
        Ok(recorded.max(history.last_handed_out(room).await))
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

/// How long ago a publication was accepted (by whichever instance accepted it).
fn since(publication: &Publication) -> Duration {
    (chrono::Utc::now() - publication.published_at).to_std().unwrap_or_default()
}

/// What the cluster bus brings back: delivered and applied through the same hub.
impl cluster::Handler for Publisher {
    async fn deliver(&self, publication: &Publication, numbered: Numbered) {
        let position = numbered.position.as_deref().and_then(Position::parse);
        let delivered = self.inner.hub.deliver(publication, &numbered.offsets, position).await;
        self.inner.metrics.delivered(delivered, since(publication));
    }

    async fn apply(&self, op: RoomOp) {
        self.inner.hub.apply(&op).await;
    }

    fn count(&self, room: &str) -> usize {
        self.inner.hub.count(room)
    }
}
