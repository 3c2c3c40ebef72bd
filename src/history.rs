//! History: publications to rooms that keep one are recorded with a per-room, strictly
//! increasing offset.
//!
//! Offsets are handed out in memory (seeded from the database the first time a room is used)
//! under a per-room lock that the publisher holds until it has delivered, so that every
//! subscriber sees a room's publications in offset order. Rows are written by one task in
//! batches (group commit): many publications share one transaction, and each publisher is told
//! once its rows are durable, so an acknowledged publication is never lost.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::history;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use crate::config::{HistoryKind, HistorySettings};
use crate::rooms::{ChannelPattern, Room};

/// Rows written in one transaction at most.
const MAX_BATCH: usize = 512;

/// A room's position, held while a publication to it is numbered and delivered.
pub struct RoomTicket {
    pub room: String,
    pub offset: i64,
    _guard: OwnedMutexGuard<Option<i64>>,
}

type WriteRequest = (Vec<history::ActiveModel>, oneshot::Sender<Result<(), String>>);

pub struct History {
    db: DatabaseConnection,
    settings: HistorySettings,
    patterns: Vec<ChannelPattern>,
    /// Last offset handed out per room; `None` until read from the database.
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<i64>>>>>,
    /// Rooms written since the last prune.
    touched: Mutex<HashSet<String>>,
    writer: mpsc::Sender<WriteRequest>,
}

impl History {
    /// Starts the writer task; it ends when the `History` is dropped.
    pub fn start(db: DatabaseConnection, settings: HistorySettings, patterns: Vec<ChannelPattern>) -> Self {
        let (writer, requests) = mpsc::channel(1024);
        tokio::spawn(write_batches(db.clone(), requests));
        History { db, settings, patterns, rooms: Mutex::default(), touched: Mutex::default(), writer }
    }

    /// Whether publications to `room` are recorded.
    pub fn keeps(&self, room: &Room) -> bool {
        let kind = match room {
            Room::User(_) => HistoryKind::User,
            Room::Org(_) => HistoryKind::Org,
            Room::Tenant(_) => HistoryKind::Tenant,
            Room::Project { .. } => HistoryKind::Project,
            Room::Channel { .. } => HistoryKind::WorkspaceChannel,
            Room::Invitation(_) => HistoryKind::Invitation,
            // Socket ids are bare names too: only public channels keep history.
            Room::Named(name) if self.patterns.iter().any(|p| p.matches(name)) => HistoryKind::Channel,
            Room::Named(_) => return false,
        };
        self.settings.kinds.contains(&kind)
    }

    /// Numbers the next publication of each room (sorted, so that concurrent publishers to
    /// overlapping rooms cannot deadlock). The tickets hold the rooms until dropped.
    pub async fn tickets(&self, rooms: &[&Room]) -> Result<Vec<RoomTicket>, DbErr> {
        let mut names: Vec<String> = rooms.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        let mut tickets = Vec::with_capacity(names.len());
        for name in names {
            let slot = self.rooms.lock().unwrap().entry(name.clone()).or_default().clone();
            let mut guard = slot.lock_owned().await;
            let last = match *guard {
                Some(last) => last,
                None => self.last_offset(&name).await?,
            };
            *guard = Some(last + 1);
            tickets.push(RoomTicket { room: name, offset: last + 1, _guard: guard });
        }
        Ok(tickets)
    }

    /// Notes an offset handed out elsewhere (by Redis, in a cluster), so that a local fallback
    /// continues after it.
    pub async fn observe(&self, room: &str, offset: i64) {
        let slot = self.rooms.lock().unwrap().entry(room.to_owned()).or_default().clone();
        let mut last = slot.lock().await;
        if let Some(last) = last.as_mut() {
            *last = (*last).max(offset);
        }
    }

    /// The last offset this instance handed out or observed for `room` (0 when none).
    pub async fn last_handed_out(&self, room: &str) -> i64 {
        let slot = self.rooms.lock().unwrap().get(room).cloned();
        match slot {
            Some(slot) => slot.lock().await.unwrap_or(0),
            None => 0,
        }
    }

    /// The highest offset recorded for `room` (0 when none).
    pub async fn last_offset(&self, room: &str) -> Result<i64, DbErr> {
        let last: Option<Option<i64>> = history::Entity::find()
            .select_only()
            .column_as(history::Column::Offset.max(), "max")
            .filter(history::Column::Room.eq(room))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(last.flatten().unwrap_or(0))
    }

    /// Writes one publication's rows and waits until they are committed.
    pub async fn record(
        &self,
        tickets: &[(String, i64)],
        publication_id: &str,
        event: &str,
        data: &str,
        published_at: DateTime<Utc>,
    ) -> Result<(), String> {
        use sea_orm::Set;
        let rows = tickets
            .iter()
            .map(|(room, offset)| history::ActiveModel {
                room: Set(room.clone()),
                offset: Set(*offset),
                publication_id: Set(publication_id.to_owned()),
                event: Set(event.to_owned()),
                data: Set(data.to_owned()),
                published_at: Set(published_at),
            })
            .collect();
        self.touched.lock().unwrap().extend(tickets.iter().map(|(r, _)| r.clone()));
        let (done, committed) = oneshot::channel();
        self.writer.send((rows, done)).await.map_err(|_| "the history writer has stopped".to_owned())?;
        committed.await.map_err(|_| "the history writer has stopped".to_owned())?
    }

    /// Entries of `room` after `since`, oldest first.
    pub async fn read(&self, room: &str, since: Since, limit: u64) -> Result<Vec<history::Model>, DbErr> {
        let query = history::Entity::find().filter(history::Column::Room.eq(room));
        let query = match since {
            Since::Offset(offset) => query.filter(history::Column::Offset.gt(offset)),
            Since::Time(time) => query.filter(history::Column::PublishedAt.gt(time)),
        };
        query.order_by_asc(history::Column::Offset).limit(limit).all(&self.db).await
    }

    /// The oldest offset still kept for `room`, if any.
    pub async fn first_offset(&self, room: &str) -> Result<Option<i64>, DbErr> {
        let first: Option<Option<i64>> = history::Entity::find()
            .select_only()
            .column_as(history::Column::Offset.min(), "min")
            .filter(history::Column::Room.eq(room))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(first.flatten())
    }

    /// Applies retention: entries older than the maximum age, and all but the newest
    /// `max_per_room` of each room written since the last prune.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let cutoff = now - chrono::Duration::from_std(self.settings.max_age).unwrap_or(chrono::Duration::MAX);
        let mut removed = history::Entity::delete_many()
            .filter(history::Column::PublishedAt.lt(cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        let rooms: Vec<String> = self.touched.lock().unwrap().drain().collect();
        let keep = self.settings.max_per_room as i64;
        for room in rooms {
            let last = self.last_offset(&room).await?;
            if last > keep {
                removed += history::Entity::delete_many()
                    .filter(history::Column::Room.eq(room.as_str()))
                    .filter(history::Column::Offset.lte(last - keep))
                    .exec(&self.db)
                    .await?
                    .rows_affected;
            }
        }
        Ok(removed)
    }
}

/// Where a reader resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Entries with a greater offset.
    Offset(i64),
    /// Entries published after this time.
    Time(DateTime<Utc>),
}

impl Since {
    /// An offset (`42`) or an RFC 3339 time (`2024-01-01T00:00:00Z`).
    pub fn parse(text: &str) -> Option<Since> {
        if let Ok(offset) = text.parse::<i64>() {
            return (offset >= 0).then_some(Since::Offset(offset));
        }
        DateTime::parse_from_rfc3339(text).ok().map(|t| Since::Time(t.with_timezone(&Utc)))
    }
}

async fn write_batches(db: DatabaseConnection, mut requests: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        let mut rows = batch[0].0.len();
        while rows < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => {
                    rows += request.0.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(rows);
        let mut waiters = Vec::with_capacity(batch.len());
        for (mut r, done) in batch {
            all.append(&mut r);
            waiters.push(done);
        }
        let result = write(&db, all).await.map_err(|e| {
            tracing::error!(error = %e, "history write failed");
            format!("history could not be written: {e}")
        });
        for done in waiters {
            let _ = done.send(result.clone());
        }
    }
}

async fn write(db: &DatabaseConnection, rows: Vec<history::ActiveModel>) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    for chunk in rows.chunks(128) {
        history::Entity::insert_many(chunk.to_vec()).exec(&txn).await?;
    }
    txn.commit().await
}

/// Prunes every minute until `shutdown`, the first time a minute after the start (an immediate
/// first tick, run late on a busy machine, raced the first publications).
pub async fn prune_periodically(history: Arc<History>, shutdown: tokio_util::sync::CancellationToken) {
    let period = Duration::from_secs(60);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match history.prune(Utc::now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "history pruned"),
            Err(e) => tracing::warn!(error = %e, "history prune failed"),
        }
    }
}
