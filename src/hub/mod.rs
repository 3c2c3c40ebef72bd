//! The hub: this instance's connections, both protocols: the Socket.IO sockets (through
//! socketioxide's local adapter) and the plain WebSocket connections ([`plain`]). It delivers a
//! publication to the members of its audience, applies room operations, and counts; it never
//! numbers, records or talks to Redis. It is the only writer to connections: sockets that
//! opted into recovery are tracked, and each gets its deliveries, its replay and its
//! notifications with its cursor through its [`Tracker`]; the others get one broadcast.
//! Publications reach it through the broker (as centrifuge's Hub is reached through its Node);
//! the Node emitter's bridge, the Node fleet's requests and connection handlers (their own
//! bookkeeping, sends to one socket) use it directly.

mod asked;
mod filtered;
mod outbox;
pub mod plain;
mod socket_filters;
mod tracker;

pub use self::outbox::Outbox;
pub use self::tracker::{Overflow, Tracker};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;
use socketioxide::{SendError, SocketError, SocketIo};

use self::plain::{Kick, PlainConnections};
use crate::metrics::{ConnectionCounts, Metrics, Transport};
use crate::publication::{Audience, Payload, Publication, RoomAction, RoomOp, SpreadArgs};
use crate::recovery::Position;
use crate::rooms::Room;
use crate::sessions::{Sessions, digest};

pub struct Hub {
    /// The Socket.IO server: its sockets and their rooms.
    sockets: SocketIo,
    /// The plain WebSocket connections (`/ws`, `/api/ws`) and their rooms.
    plain: PlainConnections,
    /// Sockets that opted into recovery (in [`Room::tracked`], with a [`Tracker`]).
    tracked: AtomicUsize,
    /// The sessions under the sockets, to cut one whose client stopped reading.
    sessions: Arc<Sessions>,
    /// Counts the connections cut as slow consumers.
    metrics: Arc<Metrics>,
    /// The filter groups of the rooms here.
    groups: filtered::Groups,
}

impl Hub {
    pub fn new(sockets: SocketIo, sessions: Arc<Sessions>, metrics: Arc<Metrics>) -> Self {
        Hub {
            sockets,
            plain: PlainConnections::default(),
            tracked: AtomicUsize::new(0),
            sessions,
            metrics,
            groups: filtered::Groups::default(),
        }
    }

    /// The plain WebSocket registry, for the connections' own bookkeeping (register, join).
    pub fn plain(&self) -> &PlainConnections {
        &self.plain
    }

    /// Counts a socket that opted into recovery (it is in [`Room::tracked`] and its extensions
    /// hold its [`Tracker`]), until [`Hub::untrack`].
    pub fn track(&self) {
        self.tracked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn untrack(&self) {
        self.tracked.fetch_sub(1, Ordering::Relaxed);
    }

    /// Delivers to every local connection in the audience, once each, and says to how many.
    /// `offsets` are the publication's history offsets by room (plain `/ws` frames carry their
    /// channel's); `position` its place in the recovery log, when it has one.
    pub async fn deliver(
        &self,
        publication: &Publication,
        offsets: &[(String, i64)],
        position: Option<Position>,
    ) -> usize {
        self.deliver_tracked(publication, position) + self.deliver_untracked(publication, offsets).await
    }

    /// Delivers to the tracked sockets of the audience, each with its cursor. Synchronous, so
    /// that a caller holding the recovery log keeps positions in order.
    pub fn deliver_tracked(&self, publication: &Publication, position: Option<Position>) -> usize {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let Some(selection) = self.select(&publication.audience) else { return 0 };
        let plan = self.filter_plan(publication);
        let mut delivered = 0;
        for socket in selection.sockets() {
            let Some(tracker) = socket.extensions.get::<Arc<Tracker>>() else { continue };
            if plan.as_ref().is_none_or(|plan| Hub::passes_planned(&socket, publication, plan)) {
                if tracker.deliver(&socket, publication, position).is_err() {
                    self.cut_slow(&socket);
                }
                delivered += 1;
            }
        }
        delivered
    }

    /// Delivers to every other connection of the audience: one broadcast to the sockets that
    /// did not opt into recovery (and, when its rooms have filters, one to the filter groups it
    /// passes: [`filtered`]), and the plain WebSocket connections.
    pub async fn deliver_untracked(&self, publication: &Publication, offsets: &[(String, i64)]) -> usize {
        let mut delivered = self.plain.deliver(publication, offsets);
        let (Some(main), Some(selection)) = (self.main(), self.select(&publication.audience)) else { return delivered };
        let tracked = Room::tracked().name();
        let Some(plan) = self.filter_plan(publication) else {
            return delivered + self.broadcast(selection.except(tracked), publication).await;
        };
        let unfiltered = [plan.markers.as_slice(), std::slice::from_ref(&tracked)].concat();
        delivered += self.broadcast(selection.except(unfiltered), publication).await;
        let mut except = publication.audience.except_names();
        except.push(tracked);
        if !plan.passing.is_empty() {
            delivered +=
                self.broadcast(main.clone().to(plan.passing.clone()).except(except.clone()), publication).await;
        }
        if publication.audience.rooms.len() > 1 {
            // Filtered sockets their filters stopped, that are in another of its rooms.
            let others = main.to(plan.markers.clone()).except([except, plan.passing.clone()].concat());
            for socket in others.sockets().into_iter().filter(|s| Hub::passes_planned(s, publication, &plan)) {
                let sent = match &publication.data {
                    Payload::Json(data) => socket.emit(publication.event.as_str(), data),
                    Payload::Emitted { args, .. } => socket.emit(publication.event.as_str(), &SpreadArgs(args)),
                };
                match sent {
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => self.cut_slow(&socket),
                    _ => delivered += 1,
                }
            }
        }
        delivered
    }

    /// One broadcast of a publication; says to how many sockets.
    async fn broadcast(&self, sockets: BroadcastOperators<LocalAdapter>, publication: &Publication) -> usize {
        // Listed for the count (socketioxide's broadcast does not say how many it reached) and
        // for the full queues below.
        let members = sockets.clone().sockets();
        let event = publication.event.as_str();
        let result = match &publication.data {
            Payload::Json(data) => sockets.emit(event, data).await,
            Payload::Emitted { args, .. } => sockets.emit(event, &SpreadArgs(args)).await,
        };
        // A closed socket is on its way out; a full queue means a client that stopped reading,
        // which lost this delivery: it is cut, so that it knows and reconnects. socketioxide does
        // not say which sockets were full: each is asked.
        match result {
            Err(socketioxide::BroadcastError::Socket(errors)) => {
                let full = errors.iter().filter(|e| matches!(e, SocketError::InternalChannelFull)).count();
                let mut cut = 0;
                for socket in members.iter().filter(|s| full > 0 && queue_full(s)) {
                    self.cut_slow(socket);
                    cut += 1;
                }
                if cut < full {
                    tracing::warn!(full, cut, event, "a delivery was lost by sockets that could not all be found");
                }
            }
            Err(error) => tracing::warn!(%error, "delivery failed"),
            Ok(()) => {}
        }
        members.len()
    }

    /// Sends one socket an event outside the log (an inbox notification at connect), with the
    /// cursor it holds when it is tracked.
    pub fn send_to(&self, socket: &SocketRef, event: &str, data: &serde_json::Value) {
        match socket.extensions.get::<Arc<Tracker>>() {
            Some(tracker) => tracker.emit(socket, event, data),
            None => {
                let _ = socket.emit(event, data);
            }
        }
    }

    /// Cuts a socket whose send queue overflowed (a client that stopped reading): its client
    /// reconnects, and an opted-in one resumes from its cursor with nothing lost.
    pub fn cut_slow(&self, socket: &SocketRef) {
        if self.cut(socket, "slow consumer: send queue full") {
            self.metrics.slow_disconnected(Transport::SocketIo);
        }
    }

    /// Cuts a socket's connection for `why`, once: its client reconnects. False when it was cut
    /// already (its connection is on its way out).
    pub fn cut(&self, socket: &SocketRef, why: &str) -> bool {
        if socket.extensions.insert(Cut).is_some() {
            return false;
        }
        let cut = self.sessions.cut(socket);
        tracing::warn!(socket = %digest(socket.id), cut, why, "cutting a connection");
        true
    }

    /// Cuts every tracked socket (the recovery log changed generation, or deliveries passed this
    /// instance by, as `why` says): each client resumes from its cursor, replayed from the log
    /// or told it no longer covers it.
    pub fn cut_tracked(&self, why: &str) {
        let sockets = self.tracked_sockets();
        tracing::warn!(sockets = sockets.len(), why, "cutting the tracked sockets");
        for socket in sockets {
            self.sessions.cut(&socket);
        }
    }

    /// Closes every local connection at a random instant within `spread` (all at once when it is
    /// zero), so that the instances that stay see a bounded reconnect rate. Deliveries go on to
    /// the connections still open.
    pub async fn drain(&self, spread: Duration) {
        let sockets = self.main().map(|ns| ns.sockets()).unwrap_or_default();
        let plain = self.plain.ids();
        let mut closes: Vec<(Duration, Closing)> = sockets
            .into_iter()
            .map(Closing::Socket)
            .chain(plain.into_iter().map(Closing::Plain))
            .map(|closing| (spread.mul_f64(fastrand::f64()), closing))
            .collect();
        closes.sort_by_key(|(at, _)| *at);
        let (count, started) = (closes.len(), tokio::time::Instant::now());
        for (at, closing) in closes {
            tokio::time::sleep_until(started + at).await;
            match closing {
                Closing::Socket(socket) if socket.connected() => {
                    self.sessions.cut(&socket);
                }
                Closing::Socket(_) => {}
                Closing::Plain(id) => self.plain.kick(&id, Kick::Draining),
            }
        }
        tracing::info!(connections = count, elapsed = ?started.elapsed(), "drained");
    }

    /// Forgets the long-polling sessions that ended.
    pub fn sweep_sessions(&self, grace: Duration) -> usize {
        self.sessions.sweep(&self.sockets, grace)
    }

    /// Applies a room operation to the local connections of its audience; returns the tracked
    /// sockets whose rooms it changed (their sessions are to be saved).
    pub async fn apply(&self, op: &RoomOp) -> Vec<SocketRef> {
        self.plain.apply(&op.target, &op.action);
        let Some(sockets) = self.select(&op.target) else { return Vec::new() };
        if let RoomAction::Leave(rooms) = &op.action
            && self.has_filters()
        {
            for socket in sockets.clone().sockets() {
                self.drop_filters(&socket, Some(rooms));
            }
        }
        let changes_rooms = matches!(op.action, RoomAction::Join(_) | RoomAction::Leave(_));
        let mut tracked = Vec::new();
        if changes_rooms && self.tracked.load(Ordering::Relaxed) > 0 {
            tracked = sockets.clone().sockets();
            tracked.retain(|s| s.extensions.get::<Arc<Tracker>>().is_some());
        }
        let result = match &op.action {
            RoomAction::Join(rooms) => sockets.join(rooms.clone()).await.map_err(|e| e.to_string()),
            RoomAction::Leave(rooms) => sockets.leave(rooms.clone()).await.map_err(|e| e.to_string()),
            RoomAction::Disconnect | RoomAction::Revoke => sockets.disconnect().await.map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, action = ?op.action, "room operation failed for some sockets");
        }
        tracked
    }

    /// Whether some local connection is in `audience`.
    pub fn has_audience(&self, audience: &Audience) -> bool {
        let sockets = self.select(audience).is_some_and(|s| !s.sockets().is_empty());
        sockets || self.plain.has_audience(audience)
    }

    /// Local connections (sockets and plain WebSockets) in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.main().map_or(0, |ns| ns.within(room.to_owned()).sockets().len()) + self.plain.members(room)
    }

    /// Local connections of both protocols.
    pub fn connections(&self) -> usize {
        self.main().map_or(0, |ns| ns.sockets().len()) + self.plain.connections()
    }

    /// Local connections by protocol (walks the sockets: for a scrape, not a hot path).
    pub fn connection_counts(&self) -> ConnectionCounts {
        let sockets = self.main().map(|ns| ns.sockets()).unwrap_or_default();
        let v4 = sockets.iter().filter(|s| s.protocol() == socketioxide::ProtocolVersion::V4).count();
        ConnectionCounts { socketio_v5: sockets.len() - v4, socketio_v4: v4, plain: self.plain.connections() }
    }

    /// Every room with a connection here (either protocol).
    pub async fn rooms_here(&self) -> std::collections::HashSet<String> {
        let mut rooms: std::collections::HashSet<String> = self.plain.rooms().into_iter().collect();
        if let Some(ns) = self.main() {
            rooms.extend(ns.rooms().await.unwrap_or_default().into_iter().map(|r| r.to_string()));
        }
        rooms
    }

    /// Socket.IO rooms that have a member here.
    pub async fn rooms(&self) -> usize {
        let Some(ns) = self.main() else { return 0 };
        ns.rooms().await.map(|r| r.len()).unwrap_or(0)
    }

    /// A local socket, by id.
    pub fn socket(&self, sid: socketioxide::socket::Sid) -> Option<socketioxide::extract::SocketRef> {
        self.main()?.get_socket(sid)
    }

    /// The local sockets that opted into recovery.
    pub fn tracked_sockets(&self) -> Vec<socketioxide::extract::SocketRef> {
        self.main().map(|ns| ns.within(Room::tracked().name()).sockets()).unwrap_or_default()
    }

    /// Closes every socket (at shutdown; plain connections close on the shutdown token).
    pub async fn close(&self) {
        self.sockets.close().await;
    }

    /// The main namespace's sockets; none once the server closed it (at shutdown, when a last
    /// publication may still come through).
    fn main(&self) -> Option<BroadcastOperators<LocalAdapter>> {
        self.sockets.of("/")
    }

    /// The sockets of an audience: the one place rooms and exceptions become a selection.
    fn select(&self, audience: &Audience) -> Option<BroadcastOperators<LocalAdapter>> {
        let main = self.main()?;
        let operators = if audience.everyone { main } else { main.to(audience.room_names()) };
        Some(operators.except(audience.except_names()))
    }
}

/// Marks a socket cut (in its extensions), so that it is cut and counted once.
#[derive(Clone)]
struct Cut;

/// A connection the drain will close.
enum Closing {
    Socket(SocketRef),
    Plain(String),
}

/// Whether a socket's send queue is full, asked without sending anything: socketioxide takes a
/// slot of the queue before it encodes an event, and gives the slot back when encoding fails,
/// which a [`QueueProbe`] always does.
fn queue_full(socket: &SocketRef) -> bool {
    matches!(socket.emit("", &QueueProbe), Err(SendError::Socket(SocketError::InternalChannelFull)))
}

/// An event argument that refuses to be encoded.
struct QueueProbe;

impl serde::Serialize for QueueProbe {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("a queue probe is never sent"))
    }
}
