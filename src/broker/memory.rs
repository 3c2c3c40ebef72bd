//! The broker of a single instance (no Redis): publications numbered in this instance's
//! history and delivered straight to its hub, the recovery log and sessions in memory
//! ([`MemoryLog`]), presence counted here. Claims always succeed: there is no one to share
//! them with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::interface::{Broker, BrokerError, Link};
use super::local::Local;
use super::memory_log::MemoryLog;
use crate::cluster::presence::Orphan;
use crate::publication::{Offsets, Publication, RoomOp};
use crate::recovery::{Position, Session, Taken};
use crate::rooms::Room;

pub struct MemoryBroker {
    local: Local,
    log: MemoryLog,
    window: Duration,
    /// The count of each user last synced, to detect transitions.
    synced: Mutex<HashMap<String, usize>>,
}

impl MemoryBroker {
    /// `window`: how long a closed session stays resumable (and the log is kept).
    pub fn new(local: Local, window: Duration) -> Self {
        MemoryBroker { local, log: MemoryLog::new(window), window, synced: Mutex::default() }
    }
}

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, publication: &Arc<Publication>, history_rooms: &[&Room]) -> Result<Offsets, BrokerError> {
        self.local.number_and_deliver(publication, history_rooms, Some(&self.log)).await
    }

    async fn apply(&self, op: RoomOp) {
        self.local.apply(&op, self).await;
    }

    async fn want(&self, _rooms: &[String]) {}

    async fn member_count(&self, room: &Room) -> usize {
        self.local.count(&room.name())
    }

    async fn last_offset(&self, room: &Room) -> i64 {
        self.local.known_last(&room.name()).await.unwrap_or(0)
    }

    async fn claim(&self, _name: &str, _ttl: Duration) -> bool {
        true
    }

    fn link(&self) -> Link {
        Link::Alone
    }

    async fn log_tail(&self) -> Result<Position, BrokerError> {
        Ok(self.log.tail())
    }

    async fn log_since(
        &self,
        after: Position,
        _rooms: &[String],
    ) -> Result<Option<Vec<(Position, Publication)>>, BrokerError> {
        Ok(self.log.since(after))
    }

    async fn save_session(&self, id: &str, session: &Session) -> Result<(), BrokerError> {
        self.log.save(id, session.clone(), None);
        Ok(())
    }

    async fn release_session(&self, id: &str, session: &Session) -> Result<(), BrokerError> {
        self.log.save(id, session.clone(), Some(self.window));
        Ok(())
    }

    fn generation(&self) -> String {
        // The log lives and dies with this process, and its positions name its start.
        String::from("memory")
    }

    async fn take_session(&self, id: &str, user: &str) -> Result<Taken, BrokerError> {
        Ok(self.log.take(id, user))
    }

    async fn sync_presence(&self, user: &str, count: usize, _rooms: &[Room]) -> Result<(usize, usize), BrokerError> {
        let mut synced = self.synced.lock().unwrap();
        let before = synced.get(user).copied().unwrap_or(0);
        if count == 0 {
            synced.remove(user);
        } else {
            synced.insert(user.to_owned(), count);
        }
        Ok((before, count))
    }

    async fn connections_elsewhere(&self, _user: &str) -> Result<usize, BrokerError> {
        Ok(0)
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        None
    }

    async fn heartbeat(&self) -> Result<bool, BrokerError> {
        Ok(false)
    }

    async fn reap_dead(&self) -> Result<Vec<Orphan>, BrokerError> {
        Ok(Vec::new())
    }

    async fn leave(&self) -> Result<Vec<Orphan>, BrokerError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
impl MemoryBroker {
    /// A memory broker over a hub with no connections and an empty database, for unit tests.
    pub async fn for_tests() -> Arc<dyn Broker> {
        use crate::config::HistorySettings;
        use crate::history::History;
        use crate::hub::Hub;
        use crate::metrics::Metrics;
        use crate::sessions::{Sessions, TrustedProxies};

        let (_, io) = socketioxide::SocketIo::new_layer();
        let metrics = Arc::new(Metrics::new());
        let sessions = Arc::new(Sessions::new(TrustedProxies::new(Vec::new())));
        let hub = Arc::new(Hub::new(io, sessions, metrics.clone()));
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("an in-memory database");
        let settings = HistorySettings { kinds: Vec::new(), max_per_room: 0, max_age: Duration::ZERO };
        let history = Arc::new(History::start(db, settings, Vec::new()));
        Arc::new(MemoryBroker::new(Local::new(hub, history, metrics), Duration::from_secs(60)))
    }
}
