//! The publish path: every way in (HTTP, Redis, the Node emitter, client events, jobs) turns
//! what it received into one [`Publication`] and hands it to [`Publisher::publish`].
//!
//! The path is: the way in has already authorized the caller (API key, room membership) →
//! a history offset for each room that keeps history → delivery to the Socket.IO rooms and the
//! plain WebSocket subscribers of this instance → the history (and a user notification's
//! inbox entry) made durable. No way in ever talks to the adapter directly.
//!
//! - [`history`]: offsets, group-committed writes, reads for polling, retention.
//! - [`inbox`]: notifications kept per user, delivered on connect, marked read.

mod event;
pub mod fanout;
pub mod history;
pub mod inbox;
mod request;
mod target;

pub use event::{EventError, EventName};
pub use request::{PublishRequest, checked_event};
pub use target::{Audience, FieldError, TargetSpec};

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use socketioxide::SocketIo;
use uuid::Uuid;

use self::fanout::{Fanout, RoomOp, SendError};
use self::history::History;
use crate::bridge::RedisLink;
use crate::presence::Presence;
use crate::rawws::hub::Hub;
use crate::rooms::{Room, RoomError};

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
    /// Received from another instance.
    Cluster,
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
    /// Signals of the moment (typing, presence, read receipts): delivered, never recorded.
    pub ephemeral: bool,
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
            ephemeral: false,
        }
    }

    /// A publication that skips history and the inbox.
    pub fn ephemeral(event: EventName, audience: Audience, data: serde_json::Value, source: Source) -> Self {
        Publication {
            ephemeral: true,
            ..Publication::new(event, audience, data, source)
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

/// Delivers publications. Cheap to clone; one per application.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Outlets>,
}

/// What a [`Publisher`] delivers to and records in.
pub struct Outlets {
    pub io: SocketIo,
    pub hub: Arc<Hub>,
    pub history: Arc<History>,
    pub presence: Arc<Presence>,
    pub db: DatabaseConnection,
    /// Cross-instance delivery, when Redis is configured.
    pub fanout: Option<Fanout>,
    pub redis: Arc<RedisLink>,
}

impl Publisher {
    pub fn new(outlets: Outlets) -> Self {
        Publisher {
            inner: Arc::new(outlets),
        }
    }

    /// The single road out: number it in each history room, deliver it to the Socket.IO and
    /// plain WebSocket subscribers of this instance, then wait until its history (and, for a
    /// user notification, the inbox) is durable.
    #[tracing::instrument(skip_all, fields(id = %publication.id, event = %publication.event, source = ?publication.source))]
    pub async fn publish(&self, publication: Publication) -> Result<Receipt, PublishError> {
        let inner = &self.inner;
        let history_rooms: Vec<&Room> = publication
            .audience
            .rooms
            .iter()
            .filter(|r| !publication.ephemeral && inner.history.keeps(r))
            .collect();
        let offsets = match &inner.fanout {
            Some(fanout) => match self.send_to_cluster(fanout, &publication, &history_rooms).await {
                Ok(offsets) => offsets,
                Err(e) => {
                    tracing::warn!(error = %e, "redis unreachable: delivering on this instance only");
                    inner.redis.set_connected(false);
                    let offsets = self.deliver_here(&publication, &history_rooms).await?;
                    fanout.numbered_alone(&offsets);
                    offsets
                }
            },
            None => self.deliver_here(&publication, &history_rooms).await?,
        };

        let is_notification = !publication.ephemeral && publication.event.as_str() == crate::notifications::EVENT;
        if !offsets.is_empty() || is_notification {
            let data = publication.data.to_string();
            if !offsets.is_empty() {
                inner
                    .history
                    .record(&offsets, &publication.id.to_string(), publication.event.as_str(), &data, publication.published_at)
                    .await
                    .map_err(PublishError::History)?;
            }
            if is_notification {
                self.keep_notification(&publication, &data).await?;
            }
        }
        Ok(Receipt {
            id: publication.id,
            event: publication.event.to_string(),
            rooms: publication.audience.room_names(),
            offset: offsets.first().map(|(_, o)| *o),
            offsets: offsets.into_iter().collect(),
        })
    }

    /// Numbers and delivers on this instance alone (single instance, or Redis down).
    async fn deliver_here(&self, publication: &Publication, history_rooms: &[&Room]) -> Result<Vec<(String, i64)>, PublishError> {
        let tickets = self
            .inner
            .history
            .tickets(history_rooms)
            .await
            .map_err(|e| PublishError::History(e.to_string()))?;
        let offsets: Vec<(String, i64)> = tickets.iter().map(|t| (t.room.clone(), t.offset)).collect();
        self.deliver(publication, &offsets).await;
        // Delivered in offset order: the next publication to these rooms may go.
        drop(tickets);
        Ok(offsets)
    }

    /// Numbers the publication in Redis and sends it to every instance, this one included (its
    /// subscriber delivers it here).
    async fn send_to_cluster(
        &self,
        fanout: &Fanout,
        publication: &Publication,
        history_rooms: &[&Room],
    ) -> Result<Vec<(String, i64)>, String> {
        let names: Vec<String> = history_rooms.iter().map(|r| r.name()).collect();
        let mut floors = Vec::with_capacity(names.len());
        for (room, needed) in names.iter().zip(fanout.needs_floor(&names)) {
            floors.push(if needed { self.known_last(room).await? } else { -1 });
        }
        let offsets = match fanout.send(publication, &names, &floors).await {
            Err(SendError::Unseeded) => {
                // Redis lost its counters: continue from what this instance and the database know.
                let mut floors = Vec::with_capacity(names.len());
                for room in &names {
                    floors.push(self.known_last(room).await?);
                }
                fanout.send(publication, &names, &floors).await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        for (room, offset) in &offsets {
            self.inner.history.observe(room, *offset).await;
        }
        if !self.inner.redis.is_connected() {
            // Our own subscriber is between connections and will not see it: deliver here.
            self.deliver(publication, &offsets).await;
        }
        Ok(offsets)
    }

    /// The highest offset of `room` this instance or the database knows.
    async fn known_last(&self, room: &str) -> Result<i64, String> {
        let history = &self.inner.history;
        let recorded = history.last_offset(room).await.map_err(|e| e.to_string())?;
        Ok(recorded.max(history.last_handed_out(room).await))
    }

    /// Delivers a publication another instance (or this one) sent through Redis.
    pub async fn deliver_remote(&self, message: &[u8]) -> Result<(), String> {
        let (publication, offsets) = fanout::decode(message)?;
        self.deliver(&publication, &offsets).await;
        Ok(())
    }

    /// Takes every connection in `from` (on every instance) out of `rooms`.
    pub async fn leave_rooms(&self, from: &Room, rooms: &[Room]) {
        let op = RoomOp::Leave {
            from: from.name(),
            rooms: rooms.iter().map(Room::name).collect(),
        };
        if let Some(fanout) = &self.inner.fanout {
            match fanout.room_op(&op).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "redis unreachable: leaving rooms on this instance only"),
            }
        }
        self.apply_room_op_here(&op).await;
    }

    /// Connections (sockets and plain WebSockets) in `room`, on every instance that answers.
    pub async fn member_count(&self, room: &Room) -> usize {
        let local = self.local_count(&room.name());
        let Some(fanout) = &self.inner.fanout else { return local };
        let others = self.inner.presence.live_instances().await.saturating_sub(1);
        match fanout.remote_count(&room.name(), others).await {
            Ok(remote) => local + remote,
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable: counting this instance only");
                local
            }
        }
    }

    fn local_count(&self, room: &str) -> usize {
        self.inner.io.within(room.to_owned()).sockets().len() + self.inner.hub.members(room)
    }

    /// Applies a room operation or answers a query another instance (or this one) sent.
    pub async fn room_op_received(&self, payload: &[u8]) -> Result<(), String> {
        let op: RoomOp = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        match &op {
            RoomOp::Count { id, room, reply_to, origin } => {
                let Some(fanout) = &self.inner.fanout else { return Ok(()) };
                if origin == fanout.instance() {
                    return Ok(());
                }
                let reply = fanout::CountReply {
                    id: *id,
                    count: self.local_count(room),
                };
                fanout.reply(reply_to, &reply).await.map_err(|e| e.to_string())
            }
            RoomOp::Leave { .. } => {
                self.apply_room_op_here(&op).await;
                Ok(())
            }
        }
    }

    /// Hands an answer to a count query to the query waiting for it.
    pub fn count_reply_received(&self, payload: &[u8]) -> Result<(), String> {
        match &self.inner.fanout {
            Some(fanout) => fanout.answer(payload),
            None => Ok(()),
        }
    }

    async fn apply_room_op_here(&self, op: &RoomOp) {
        if let RoomOp::Leave { from, rooms } = op {
            if let Err(e) = self.inner.io.to(from.clone()).leave(rooms.clone()).await {
                tracing::warn!(error = %e, "could not remove sockets from rooms");
            }
            for room in rooms {
                self.inner.hub.leave_all(from, room);
            }
        }
    }

    /// True for the first instance to claim `key` within `ttl` (always true on a single instance).
    pub async fn claim_key(&self, key: &str, ttl: std::time::Duration) -> bool {
        match &self.inner.fanout {
            Some(fanout) => fanout.claim_key(key, ttl).await,
            None => true,
        }
    }

    /// See [`Fanout::claim`]; always true on a single instance.
    pub async fn claim(&self, channel: &str, payload: &[u8]) -> bool {
        match &self.inner.fanout {
            Some(fanout) => fanout.claim(channel, payload).await,
            None => true,
        }
    }

    async fn deliver(&self, publication: &Publication, offsets: &[(String, i64)]) {
        let audience = &publication.audience;
        let operators = if audience.everyone {
            self.inner.io.broadcast()
        } else {
            self.inner.io.to(audience.room_names())
        };
        let result = operators
            .except(audience.except_names())
            .emit(publication.event.as_str(), &publication.data)
            .await;
        // A closed socket is on its way out; a full queue means a client far behind, which
        // loses this delivery (socketioxide does not say which socket it was).
        if let Err(socketioxide::BroadcastError::Socket(errors)) = &result {
            let full = errors
                .iter()
                .filter(|e| matches!(e, socketioxide::SocketError::InternalChannelFull))
                .count();
            if full > 0 {
                tracing::warn!(full, event = %publication.event, "delivery dropped for sockets whose send queue is full");
            }
        } else if let Err(error) = result {
            tracing::warn!(%error, "delivery failed");
        }
        self.inner.hub.deliver(publication, offsets);
    }

    /// Keeps a user notification in each addressed user's inbox.
    async fn keep_notification(&self, publication: &Publication, data: &str) -> Result<(), PublishError> {
        let mut users: Vec<(String, bool)> = Vec::new();
        for room in &publication.audience.rooms {
            if let Room::User(u) = room {
                users.push((u.clone(), self.inner.presence.is_online(u).await));
            }
        }
        let id = inbox::notification_id(&publication.data, &publication.id.to_string());
        inbox::keep(&self.inner.db, &users, &id, data, publication.published_at)
            .await
            .map_err(|e| PublishError::History(e.to_string()))
    }

    pub fn history(&self) -> &Arc<History> {
        &self.inner.history
    }
}
