//! This instance's side of every broker: numbering in its own history when it is alone (or cut
//! off from Redis), and delivering to its hub what some instance numbered.

use std::sync::Arc;
use std::time::Duration;

use super::interface::{Broker, BrokerError, save_session};
use super::memory_log::MemoryLog;
use crate::history::History;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::publication::{Offsets, Publication, RoomAction, RoomOp};
use crate::recovery::Position;
use crate::rooms::Room;

/// This instance's history and hub. Cheap to clone.
#[derive(Clone)]
pub struct Local {
    hub: Arc<Hub>,
    history: Arc<History>,
    metrics: Arc<Metrics>,
}

impl Local {
    pub fn new(hub: Arc<Hub>, history: Arc<History>, metrics: Arc<Metrics>) -> Self {
        Local { hub, history, metrics }
    }

    /// Numbers a publication in this instance's history (and, given `log`, in its recovery
    /// log) and delivers it here. The rooms stay held until it is delivered, so the next
    /// publication to them is delivered after it.
    pub(super) async fn number_and_deliver(
        &self,
        publication: &Publication,
        history_rooms: &[&Room],
        log: Option<&MemoryLog>,
    ) -> Result<Offsets, BrokerError> {
        let tickets = self.history.tickets(history_rooms).await?;
        let offsets: Offsets = tickets.iter().map(|t| (t.room.clone(), t.offset)).collect();
        let hub = &self.hub;
        // Positioned and handed to the tracked sockets while the log is held (in order).
        let logged = match (publication.ephemeral, log) {
            (false, Some(log)) => log.append(publication, |p| hub.deliver_tracked(publication, Some(p))),
            _ => None,
        };
        let tracked = logged.unwrap_or_else(|| hub.deliver_tracked(publication, None));
        let untracked = hub.deliver_untracked(publication, &offsets).await;
        self.metrics.delivered(tracked + untracked, since(publication));
        drop(tickets);
        Ok(offsets)
    }

    /// Delivers here what some instance numbered (or what every instance received by itself:
    /// the Node emitter's, neither numbered nor logged).
    pub async fn deliver(&self, publication: &Publication, offsets: &[(String, i64)], position: Option<Position>) {
        let delivered = self.hub.deliver(publication, offsets, position).await;
        self.metrics.delivered(delivered, since(publication));
    }

    /// Applies a room operation to this instance's connections and saves, through `broker`, the
    /// sessions whose rooms it changed. Rooms joined here are read first ([`Broker::want`]).
    pub async fn apply(&self, op: &RoomOp, broker: &dyn Broker) {
        if let RoomAction::Join(rooms) = &op.action
            && self.hub.has_audience(&op.target)
        {
            broker.want(rooms).await;
        }
        for socket in self.hub.apply(op).await {
            save_session(broker, &socket).await;
        }
    }

    /// Cuts every tracked socket: each resumes and learns whether the log still covers it.
    pub fn cut_tracked(&self, why: &str) {
        self.hub.cut_tracked(why);
    }

    /// Every room with a connection here.
    pub async fn rooms_here(&self) -> std::collections::HashSet<String> {
        self.hub.rooms_here().await
    }

    /// This instance's connections in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.hub.count(room)
    }

    /// The highest offset of `room` this instance or the database knows.
    pub(super) async fn known_last(&self, room: &str) -> Result<i64, BrokerError> {
        let recorded = self.history.last_offset(room).await?;
        Ok(recorded.max(self.history.last_handed_out(room).await))
    }

    /// Notes an offset handed out by the cluster, so that numbering alone continues after it.
    pub(super) async fn observe(&self, room: &str, offset: i64) {
        self.history.observe(room, offset).await;
    }
}

/// How long ago a publication was accepted (by whichever instance accepted it).
fn since(publication: &Publication) -> Duration {
    (chrono::Utc::now() - publication.published_at).to_std().unwrap_or_default()
}
