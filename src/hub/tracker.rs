//! One opted-in socket's place in the recovery log: the cursor it holds, the live deliveries
//! held back while its replay runs, and whether its send queue overflowed (after which nothing
//! more is sent to it: it is cut, and resumes from its cursor).

use std::sync::Mutex;

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

use crate::event::EventName;
use crate::publication::{Payload, Publication, SpreadArgs};
use crate::recovery::{Cursor, Position, Session};
use crate::sessions::digest;

use super::socket_filters;

/// One opted-in socket's place: its session (and whose it is), the last position it was given,
/// and, while its replay runs, the live deliveries held back.
pub struct Tracker {
    pub session: String,
    pub user: String,
    /// The recovery log's generation when the socket went live: its session resumes losslessly
    /// only in a log of the same generation.
    pub generation: String,
    state: Mutex<TrackerState>,
    /// Held while the session is written, its rooms read under it: of two writes racing (the
    /// resume's and a `subscribe`'s), the one that lands last has the latest rooms.
    writing: tokio::sync::Mutex<()>,
}

struct TrackerState {
    last: Position,
    held: Option<Vec<(Option<Position>, Publication)>>,
    /// A delivery found the socket's send queue full: nothing more is sent to it (a later one
    /// would move its cursor past the lost one), and it is being cut to resume elsewhere.
    overflowed: bool,
}

/// A tracked socket's send queue was full: the delivery was lost and the socket must be cut,
/// so that its client resumes from the cursor it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl Tracker {
    /// A tracker that holds live deliveries back until [`Tracker::go_live`].
    pub fn replaying(session: String, user: String, generation: String) -> Self {
        Tracker {
            session,
            user,
            generation,
            state: Mutex::new(TrackerState { last: Position::ZERO, held: Some(Vec::new()), overflowed: false }),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for the session's earlier writes; the next is the caller's until the guard drops.
    pub async fn writing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writing.lock().await
    }

    /// What to keep of the socket's session: its user and the rooms it is in now.
    pub fn session_now(&self, socket: &SocketRef) -> Session {
        let rooms = Session::restorable(socket.rooms().into_iter().map(|r| r.to_string()), &socket.id.to_string());
        let filters = socket_filters::saved(socket);
        Session { user: self.user.clone(), rooms, generation: Some(self.generation.clone()), filters }
    }

    /// A live delivery: held back during the replay, else sent with its cursor.
    pub fn deliver(
        &self,
        socket: &SocketRef,
        publication: &Publication,
        position: Option<Position>,
    ) -> Result<(), Overflow> {
        let mut state = self.state.lock().unwrap();
        if let Some(held) = &mut state.held {
            held.push((position, publication.clone()));
            return Ok(());
        }
        self.send_live(&mut state, socket, publication, position)
    }

    /// An event outside the log (an inbox notification at connect), sent with the cursor the
    /// socket holds.
    pub fn emit(&self, socket: &SocketRef, event: &str, data: &Value) {
        let state = self.state.lock().unwrap();
        let cursor = Cursor { session: self.session.clone(), position: state.last };
        let _ = socket.emit(event, &(data, cursor.to_string()));
    }

    /// A replayed publication. A full queue is no overflow here (a long replay fills it while
    /// the client reads): the caller waits and gives it again.
    pub fn replay(&self, socket: &SocketRef, publication: &Publication, position: Position) -> Result<(), Overflow> {
        let mut state = self.state.lock().unwrap();
        self.send(&mut state, socket, publication, Some(position))
    }

    /// Ends the replay: `covered` is the position through which the replay gave the socket
    /// everything. Tells the client (`recovery {recovered, missed, cursor}`), then drops the
    /// held deliveries up to `covered` (the replay had them) and sends the rest.
    pub fn go_live(
        &self,
        socket: &SocketRef,
        covered: Position,
        recovered: bool,
        missed: usize,
    ) -> Result<(), Overflow> {
        let mut state = self.state.lock().unwrap();
        state.last = state.last.max(covered);
        let cursor = Cursor { session: self.session.clone(), position: state.last };
        let told = json!({"recovered": recovered, "missed": missed, "cursor": cursor.to_string()});
        let _ = socket.emit(EventName::RECOVERY.as_str(), &told);
        let mut result = Ok(());
        for (position, publication) in state.held.take().unwrap_or_default() {
            result = result.and(self.send_live(&mut state, socket, &publication, position));
        }
        result
    }

    /// Sends a live delivery; a full queue marks the socket overflowed, so nothing after the
    /// lost delivery reaches it.
    fn send_live(
        &self,
        state: &mut TrackerState,
        socket: &SocketRef,
        publication: &Publication,
        position: Option<Position>,
    ) -> Result<(), Overflow> {
        let result = self.send(state, socket, publication, position);
        state.overflowed |= result.is_err();
        result
    }

    /// Sends with the cursor, unless the socket already had this position. Positions reach a
    /// socket in order (the bus delivers in log order; a lone instance positions and delivers
    /// under one lock), so one at or below the last given is one the replay gave (its message
    /// reached this instance after the replay read the log).
    fn send(
        &self,
        state: &mut TrackerState,
        socket: &SocketRef,
        publication: &Publication,
        position: Option<Position>,
    ) -> Result<(), Overflow> {
        if state.overflowed {
            return Err(Overflow);
        }
        if position.is_some_and(|p| p <= state.last) {
            return Ok(());
        }
        let last = position.unwrap_or(state.last);
        let cursor = Value::String(Cursor { session: self.session.clone(), position: last }.to_string());
        let event = publication.event.as_str();
        let sent = match &publication.data {
            Payload::Json(data) => socket.emit(event, &(data, &cursor)),
            Payload::Emitted { args, .. } => {
                let mut args: Vec<rmpv::Value> = args.clone();
                args.push(rmpv::Value::from(cursor.as_str().unwrap_or_default()));
                socket.emit(event, &SpreadArgs(&args))
            }
        };
        match sent {
            Ok(()) => {
                state.last = last;
                Ok(())
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(Overflow),
            Err(e) => {
                tracing::debug!(socket = %digest(socket.id), error = %e, "delivery to a tracked socket failed");
                Ok(())
            }
        }
    }
}
