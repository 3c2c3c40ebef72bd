//! What every broker does (see [`crate::broker`]), and what is built on it for every kind.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::extract::SocketRef;

use crate::cluster::presence::Orphan;
use crate::hub::Tracker;
use crate::publication::{Offsets, Publication, RoomOp};
use crate::recovery::{Position, Session, Taken};
use crate::rooms::Room;

/// Why a broker could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

impl From<redis::RedisError> for BrokerError {
    fn from(e: redis::RedisError) -> Self {
        BrokerError(e.to_string())
    }
}

impl From<sea_orm::DbErr> for BrokerError {
    fn from(e: sea_orm::DbErr) -> Self {
        BrokerError(e.to_string())
    }
}

impl From<String> for BrokerError {
    fn from(e: String) -> Self {
        BrokerError(e)
    }
}

/// The state of the link between instances, as the status endpoints show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A single instance: there is no link.
    Alone,
    Connected,
    /// Delivering on this instance only until the link is back.
    Disconnected,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Alone => "disabled",
            Link::Connected => "connected",
            Link::Disconnected => "disconnected",
        }
    }
}

/// What one instance or a cluster of them keeps and shares (see the module doc).
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Numbers `publication` in `history_rooms` (and, unless it is ephemeral, in the recovery
    /// log) and delivers it to the connections of every instance, this one's included, in
    /// offset order per room. Returns its offsets by room.
    async fn publish(&self, publication: &Arc<Publication>, history_rooms: &[&Room]) -> Result<Offsets, BrokerError>;
    /// Applies a room operation to the audience's connections on every instance, and saves the
    /// sessions whose rooms it changed.
    async fn apply(&self, op: RoomOp);
    /// Readies this instance to receive what is published to `rooms`: called before a local
    /// connection enters them, so that nothing published after it entered passes it by.
    async fn want(&self, rooms: &[String]);
    /// Connections (sockets and plain WebSockets) in `room`, on every instance that answers.
    async fn member_count(&self, room: &Room) -> usize;
    /// The last history offset handed out in `room`, by any instance that answers.
    async fn last_offset(&self, room: &Room) -> i64;
    /// True for one instance of the cluster that claims `name` within `ttl` (always true alone).
    async fn claim(&self, name: &str, ttl: Duration) -> bool;
    fn link(&self) -> Link;

    /// The last position logged.
    async fn log_tail(&self) -> Result<Position, BrokerError>;
    /// Every logged publication after `after` to `rooms` (or to everyone), oldest first; `None`
    /// when the log no longer covers everything after it. It may hold others (the caller
    /// filters); only what it must is read.
    async fn log_since(
        &self,
        after: Position,
        rooms: &[String],
    ) -> Result<Option<Vec<(Position, Publication)>>, BrokerError>;
    /// Records a connected session (kept while its instance lives, and the window after).
    async fn save_session(&self, id: &str, session: &Session) -> Result<(), BrokerError>;
    /// Records a session whose socket closed: resumable for the recovery window.
    async fn release_session(&self, id: &str, session: &Session) -> Result<(), BrokerError>;
    /// Takes `user`'s session `id` for resumption: it can be resumed once. Whose it is is
    /// checked in the same step as it is taken: another user's session is left untouched.
    async fn take_session(&self, id: &str, user: &str) -> Result<Taken, BrokerError>;
    /// The recovery log's generation: a session made live in another one may have missed what
    /// the log lost, and resumes with `recovered: false`.
    fn generation(&self) -> String;

    /// Sets this instance's count of `user` (whose status goes to `rooms`) and returns his
    /// totals across instances before and after.
    async fn sync_presence(&self, user: &str, count: usize, rooms: &[Room]) -> Result<(usize, usize), BrokerError>;
    /// `user`'s connections on the other instances, as they last synced.
    async fn connections_elsewhere(&self, user: &str) -> Result<usize, BrokerError>;
    /// How often [`Broker::heartbeat`] should run; `None` alone.
    fn heartbeat_interval(&self) -> Option<Duration>;
    /// Refreshes this instance's heartbeat. True when that registered it anew: at its first
    /// beat, or after others took it for dead (its users must then be synced again).
    async fn heartbeat(&self) -> Result<bool, BrokerError>;
    /// Takes the instances whose heartbeat expired out of presence; returns the users left with
    /// no connection anywhere.
    async fn reap_dead(&self) -> Result<Vec<Orphan>, BrokerError>;
    /// Takes this instance out of presence at shutdown; returns the users that leaves with no
    /// connection anywhere.
    async fn leave(&self) -> Result<Vec<Orphan>, BrokerError>;
}

/// Saves a tracked socket's session with the rooms it is in now, after that session's earlier
/// writes (so the write that lands last holds the latest rooms); a socket already gone is left
/// to its release.
pub async fn save_session(broker: &dyn Broker, socket: &SocketRef) {
    let Some(tracker) = socket.extensions.get::<Arc<Tracker>>() else { return };
    let _writing = tracker.writing().await;
    if !socket.connected() {
        return;
    }
    if let Err(e) = broker.save_session(&tracker.session, &tracker.session_now(socket)).await {
        tracing::warn!(error = %e, "recovery: session not saved");
    }
}
