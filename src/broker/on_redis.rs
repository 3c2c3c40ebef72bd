//! The broker of a cluster on Redis, through the cluster bus ([`crate::cluster`]): the bus
//! numbers and publishes a publication in one Lua step, and every instance, this one included,
//! delivers what its subscriber reads to its own connections ([`cluster::Handler`]). While Redis
//! does not answer, this instance numbers and delivers on its own, as a single instance does,
//! and raises the cluster's counters past what it numbered once Redis is back.

use std::sync::Arc;
use std::time::Duration;

use super::interface::{Broker, BrokerError, Link};
use super::local::Local;
use crate::cluster::deliver::{SendError, decode_body};
use crate::cluster::presence::Orphan;
use crate::cluster::{self, Bus, Numbered};
use crate::metrics::RedisFailure;
use crate::publication::{Offsets, Publication, RoomOp};
use crate::recovery::{Position, Session, Taken, session_instance};
use crate::rooms::Room;

/// Cheap to clone: the bus's subscriber holds one.
#[derive(Clone)]
pub struct RedisBroker {
    bus: Bus,
    local: Local,
}

impl RedisBroker {
    pub fn new(bus: Bus, local: Local) -> Self {
        RedisBroker { bus, local }
    }

    /// Numbers the publication in Redis and sends it to every instance, this one included (the
    /// subscriber hands it back to [`cluster::Handler::deliver`]). A room this instance
    /// numbered alone, or whose counter Redis lost, is numbered from what this instance and the
    /// database know.
    async fn send(&self, publication: &Arc<Publication>, history_rooms: &[&Room]) -> Result<Offsets, BrokerError> {
        let bus = &self.bus;
        let names: Vec<String> = history_rooms.iter().map(|r| r.name()).collect();
        let mut floors = Vec::with_capacity(names.len());
        for (room, needed) in names.iter().zip(bus.needs_floor(&names)) {
            floors.push(if needed { self.local.known_last(room).await? } else { -1 });
        }
        let numbered = match bus.send(publication, &names, &floors).await {
            Err(SendError::Unseeded) => {
                // Redis lost its counters: continue from what this instance and the database know.
                let mut floors = Vec::with_capacity(names.len());
                for room in &names {
                    floors.push(self.local.known_last(room).await?);
                }
                bus.send(publication, &names, &floors).await
            }
            other => other,
        }
        .map_err(|e| BrokerError(e.to_string()))?;
        for (room, offset) in &numbered.offsets {
            self.local.observe(room, *offset).await;
        }
        if !bus.is_connected() && bus.take_sent(publication.id).is_some() {
            // Our own subscriber is between connections and has not brought it back: deliver here.
            cluster::Handler::deliver(self, publication, numbered.clone()).await;
        }
        Ok(numbered.offsets)
    }

    /// A Redis failure, counted and logged; the caller falls back on this instance alone.
    fn failed(&self, error: impl std::fmt::Display, fallback: &str) {
        tracing::warn!(error = %error, "redis unreachable: {fallback}");
        self.bus.count_failure(RedisFailure::Command);
    }

    /// A command's result, its failure counted (the caller logs what it gives up).
    fn counted<T>(&self, result: redis::RedisResult<T>) -> Result<T, BrokerError> {
        result.map_err(|e| {
            self.bus.count_failure(RedisFailure::Command);
            e.into()
        })
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, publication: &Arc<Publication>, history_rooms: &[&Room]) -> Result<Offsets, BrokerError> {
        match self.send(publication, history_rooms).await {
            Ok(offsets) => Ok(offsets),
            Err(e) => {
                self.failed(e, "delivering on this instance only");
                self.bus.set_disconnected();
                let offsets = self.local.number_and_deliver(publication, history_rooms, None).await?;
                self.bus.numbered_alone(&offsets);
                if !publication.ephemeral {
                    // Clients elsewhere missed it and the log lacks it: a new generation follows.
                    self.bus.delivered_alone();
                }
                Ok(offsets)
            }
        }
    }

    async fn apply(&self, op: RoomOp) {
        match self.bus.room_op(&op).await {
            Ok(()) => {}
            Err(e) => {
                self.failed(e, "applying the room operation on this instance only");
                self.local.apply(&op, self).await;
            }
        }
    }

    async fn want(&self, rooms: &[String]) {
        if let Err(e) = self.bus.want(rooms).await {
            self.failed(e, "the rooms are read once the subscriber reconnects");
        }
    }

    async fn member_count(&self, room: &Room) -> usize {
        let name = room.name();
        let local = self.local.count(&name);
        match self.bus.remote_count(&name).await {
            Ok(remote) => local + remote,
            Err(e) => {
                self.failed(e, "counting this instance only");
                local
            }
        }
    }

    async fn last_offset(&self, room: &Room) -> i64 {
        let name = room.name();
        let here = self.local.known_last(&name).await.unwrap_or(0);
        self.bus.room_offset(&name).await.unwrap_or(0).max(here)
    }

    async fn claim(&self, name: &str, ttl: Duration) -> bool {
        self.bus.claim(name, ttl).await
    }

    fn link(&self) -> Link {
        if self.bus.is_delivering() { Link::Connected } else { Link::Disconnected }
    }

    async fn log_tail(&self) -> Result<Position, BrokerError> {
        let tail = self.bus.log_tail().await?;
        Ok(Position::parse(&tail).ok_or_else(|| format!("log position `{tail}` does not parse"))?)
    }

    async fn log_since(
        &self,
        after: Position,
        rooms: &[String],
    ) -> Result<Option<Vec<(Position, Publication)>>, BrokerError> {
        let entries = self.bus.log_since(&after.to_string(), rooms).await?;
        let mut read = Vec::with_capacity(entries.len());
        for (id, body) in entries {
            let position = Position::parse(&id).ok_or_else(|| format!("log position `{id}` does not parse"))?;
            read.push((position, decode_body(&body)?));
        }
        Ok(Some(read))
    }

    async fn save_session(&self, id: &str, session: &Session) -> Result<(), BrokerError> {
        Ok(self.bus.save_session(id, &to_json(session)).await?)
    }

    async fn release_session(&self, id: &str, session: &Session) -> Result<(), BrokerError> {
        Ok(self.bus.release_session(id, &to_json(session)).await?)
    }

    fn generation(&self) -> String {
        self.bus.generation()
    }

    async fn take_session(&self, id: &str, user: &str) -> Result<Taken, BrokerError> {
        // The generation a resume is judged by must be the current master's: on a Cluster the
        // new master answers (the redis crate follows the slots) before the periodic check
        // notices it was promoted.
        self.bus.follow_master(self).await;
        Ok(match self.bus.take_session(id, user, session_instance(id)).await? {
            cluster::recovery::TakenSession::Taken(json) => {
                serde_json::from_str(&json).map_or(Taken::Missing, Taken::Session)
            }
            cluster::recovery::TakenSession::OtherUsers => Taken::OtherUsers,
            cluster::recovery::TakenSession::Missing => Taken::Missing,
        })
    }

    async fn sync_presence(&self, user: &str, count: usize, rooms: &[Room]) -> Result<(usize, usize), BrokerError> {
        self.counted(self.bus.sync_presence(user, count, rooms).await)
    }

    async fn connections_elsewhere(&self, user: &str) -> Result<usize, BrokerError> {
        Ok(self.bus.connections_elsewhere(user).await?)
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        Some(self.bus.beat_interval())
    }

    async fn heartbeat(&self) -> Result<bool, BrokerError> {
        self.counted(self.bus.beat().await)
    }

    async fn reap_dead(&self) -> Result<Vec<Orphan>, BrokerError> {
        self.counted(self.bus.reap_dead().await)
    }

    async fn leave(&self) -> Result<Vec<Orphan>, BrokerError> {
        Ok(self.bus.leave_presence().await?)
    }
}

fn to_json(session: &Session) -> String {
    serde_json::to_string(session).expect("serializable")
}

/// What the bus's subscriber hands to this instance: delivered and applied through its hub.
impl cluster::Handler for RedisBroker {
    async fn deliver(&self, publication: &Publication, numbered: Numbered) {
        let position = numbered.position.as_deref().and_then(Position::parse);
        self.local.deliver(publication, &numbered.offsets, position).await;
    }

    async fn apply(&self, op: RoomOp) {
        self.local.apply(&op, self).await;
    }

    fn count(&self, room: &str) -> usize {
        self.local.count(room)
    }

    async fn rooms_here(&self) -> std::collections::HashSet<String> {
        self.local.rooms_here().await
    }

    fn generation_changed(&self) {
        self.local.cut_tracked("the recovery log changed generation");
    }

    fn resubscribed(&self) {
        self.local.cut_tracked("the subscriber was away: publications meanwhile passed this instance by");
    }
}
