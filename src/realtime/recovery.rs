//! Recovery over Socket.IO (see [`crate::recovery`]): a client opts in with a handshake
//! `auth.offset` (`""` the first time, then the last cursor it received). In the connect
//! middleware, before the client hears `connect`, the socket takes its session's rooms back and
//! starts holding live deliveries; once connected it gets what it missed, then `recovery
//! {recovered, missed, cursor}`, then the held and live deliveries. Its session is saved when
//! its rooms change and released (resumable for the window) when it disconnects.

use std::sync::Arc;
use std::time::Duration;

use socketioxide::extract::SocketRef;

use crate::access;
use crate::auth::Identity;
use crate::broker;
use crate::hub::{Hub, Overflow, Tracker};
use crate::publication::Publication;
use crate::recovery::{Cursor, Position, Session, Taken, addressed_to, new_session_id};
use crate::rooms::Room;
use crate::sessions::digest;
use crate::state::AppState;

/// Where an opted-in socket resumes from: the position of the cursor it came back with, when
/// its session was found.
#[derive(Clone, Copy)]
struct Resume(Option<Position>);

/// Opts the socket in, in the connect middleware: restores its session's rooms when `offset`
/// is the cursor of a session of the same user that is still resumable (another user's cursor
/// is refused without spending the session: see [`Taken`]). A resumed socket keeps
/// its session id (a client cut again before it heard `recovery` still holds a valid cursor),
/// and the session is saved at once.
pub async fn opt_in(state: &AppState, socket: &SocketRef, identity: &Identity, offset: &str) {
    let mut from = None;
    let mut session_id = None;
    if let Some(cursor) = Cursor::parse(offset) {
        let taken = state.broker.take_session(&cursor.session, &identity.user_id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "recovery: session could not be read");
            Taken::Missing
        });
        match taken {
            Taken::Session(session) => {
                let generation = state.broker.generation();
                let continuous = session.generation.as_ref().is_none_or(|g| *g == generation);
                if !continuous {
                    tracing::info!(socket = %digest(socket.id), "recovery: the log changed generation since; not recovered");
                }
                let rooms = still_allowed(state, identity, session.rooms).await;
                state.broker.want(&rooms).await;
                socket.join(rooms.clone());
                restore_filters(state, socket, &rooms, &session.filters);
                from = continuous.then_some(cursor.position);
                session_id = Some(cursor.session);
            }
            Taken::OtherUsers => tracing::warn!(
                socket = %digest(socket.id),
                "recovery: a cursor of another user's session; not resumed, and left for its owner"
            ),
            Taken::Missing => tracing::debug!(socket = %digest(socket.id), "recovery: session unknown or expired"),
        }
    } else if !offset.is_empty() {
        tracing::debug!(socket = %digest(socket.id), "recovery: the offset is not a cursor");
    }
    let session_id = session_id.unwrap_or_else(|| new_session_id(&state.instance.id));
    socket.extensions.insert(Arc::new(Tracker::replaying(
        session_id,
        identity.user_id.clone(),
        state.broker.generation(),
    )));
    socket.extensions.insert(Resume(from));
    socket.join(Room::tracked().name());
    state.hub.track();
    save(state, socket).await;
}

/// The filters the session kept, on the rooms it got back (and the home rooms, which the
/// socket is in already).
fn restore_filters(
    state: &AppState,
    socket: &SocketRef,
    rooms: &[String],
    filters: &std::collections::BTreeMap<String, serde_json::Value>,
) {
    let here = socket.rooms();
    for (room, saved) in filters {
        let present = rooms.contains(room) || here.iter().any(|r| r == room);
        match crate::filters::Filter::from_json(saved) {
            Ok(Some(filter)) if present => state.hub.set_filter(socket, room, Some(filter)),
            Ok(_) => {}
            Err(e) => tracing::warn!(room, error = %e, "recovery: a saved filter is no longer valid; not restored"),
        }
    }
}

/// The session's rooms the user may still be in: private rooms (projects, channels,
/// invitations) are checked again against the directory, as history reads are (a membership
/// removed while he was away stays removed); public and backend-joined rooms are kept.
async fn still_allowed(state: &AppState, identity: &Identity, rooms: Vec<String>) -> Vec<String> {
    let mut allowed = Vec::with_capacity(rooms.len());
    for name in rooms {
        let keep = match Room::parse(&name) {
            Ok(room) if room.is_private() => {
                access::may_read(&state.db, &state.settings.channel_patterns, identity, &room).await.is_ok()
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if keep {
            allowed.push(name);
        } else {
            tracing::info!(room = %name, "recovery: a room of the session is no longer allowed; not restored");
        }
    }
    allowed
}

/// Once connected: replays what the socket missed, sends `recovery`, then lets live deliveries
/// through. Nothing is replayed unless the log covers everything after the cursor.
pub async fn resume(state: &AppState, socket: &SocketRef) {
    let Some(tracker) = socket.extensions.get::<Arc<Tracker>>() else { return };
    let from = socket.extensions.get::<Resume>().and_then(|r| r.0);
    let rooms: Vec<String> = socket.rooms().iter().map(|r| r.to_string()).collect();
    let read = match from {
        Some(after) => state.broker.log_since(after, &rooms).await.map(|entries| entries.map(|e| (after, e))),
        None => Ok(None),
    };
    let (recovered, covered, missed) = match read {
        Ok(Some((after, entries))) => {
            let covered = entries.last().map_or(after, |(p, _)| *p).max(after);
            let mut missed = 0;
            // What its filters exclude is not replayed either.
            let for_it = |p: &Publication| addressed_to(p, &rooms) && Hub::passes(socket, p);
            for (position, publication) in entries.iter().filter(|(_, p)| for_it(p)) {
                if replay_waiting(&tracker, socket, publication, *position).await.is_err() {
                    // The client stopped reading: no `recovery` (its cursor would pass what was
                    // not sent); it resumes again from the cursor it holds.
                    state.hub.cut_slow(socket);
                    return;
                }
                missed += 1;
            }
            (true, covered, missed)
        }
        other => {
            if let Err(e) = other {
                tracing::warn!(socket = %digest(socket.id), error = %e, "recovery: the log could not be read");
            }
            let tail = state.broker.log_tail().await.unwrap_or_else(|e| {
                tracing::warn!(socket = %digest(socket.id), error = %e, "recovery: the log's tail could not be read");
                Position::ZERO
            });
            (false, tail, 0)
        }
    };
    if tracker.go_live(socket, covered, recovered, missed).is_err() {
        state.hub.cut_slow(socket);
    }
    tracing::info!(socket = %digest(socket.id), recovered, missed, "recovery");
    save(state, socket).await;
}

/// How long a replay waits for room in the socket's send queue before it counts the client as
/// one that stopped reading.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);

/// Replays one publication, waiting while the socket's queue is full (a long replay fills it
/// faster than the client reads), up to [`REPLAY_PATIENCE`].
async fn replay_waiting(
    tracker: &Tracker,
    socket: &SocketRef,
    publication: &Publication,
    position: Position,
) -> Result<(), Overflow> {
    let started = tokio::time::Instant::now();
    loop {
        match tracker.replay(socket, publication, position) {
            Err(Overflow) if started.elapsed() < REPLAY_PATIENCE => tokio::time::sleep(Duration::from_millis(5)).await,
            result => return result,
        }
    }
}

/// Saves an opted-in socket's session with the rooms (and filters) it has now.
pub async fn saved(state: &AppState, socket: &SocketRef) {
    save(state, socket).await;
}

/// Saves an opted-in socket's session with the rooms it is in now.
async fn save(state: &AppState, socket: &SocketRef) {
    broker::save_session(state.broker.as_ref(), socket).await;
}

/// A client's join: the socket enters `rooms` and its session is saved with them, as a
/// backend's join saves it ([`crate::broker::Local::apply`]).
pub async fn join(state: &AppState, socket: &SocketRef, rooms: Vec<String>) {
    state.broker.want(&rooms).await;
    socket.join(rooms);
    save(state, socket).await;
}

/// A client's subscription with its filter (or none): the socket enters `room` with the filter
/// in one step, and its session is saved with both.
pub async fn join_filtered(state: &AppState, socket: &SocketRef, room: String, filter: Option<crate::filters::Filter>) {
    state.broker.want(std::slice::from_ref(&room)).await;
    state.hub.join_filtered(socket, &room, filter);
    save(state, socket).await;
}

/// A client's leave: the socket leaves `rooms` (and drops its filters on them) and its session
/// is saved without them.
pub async fn leave(state: &AppState, socket: &SocketRef, rooms: Vec<String>) {
    state.hub.drop_filters(socket, Some(&rooms));
    socket.leave(rooms);
    save(state, socket).await;
}

/// At disconnect: the session stays resumable for the window, with the rooms the socket had
/// (`session`, read at the disconnect), written after any save still on its way.
pub async fn release(state: &AppState, tracker: Option<Arc<Tracker>>, session: Option<(String, Session)>) {
    if let (Some(tracker), Some((id, session))) = (tracker, session) {
        let _writing = tracker.writing().await;
        state.hub.untrack();
        release_session(state, &id, &session).await;
    }
}

/// At shutdown, before the sockets close: every opted-in socket's session is made resumable
/// for the window, so that its client resumes on another instance (a rolling deploy).
pub async fn release_all(state: &AppState) {
    let sockets = state.hub.tracked_sockets();
    let count = sockets.len();
    for socket in sockets {
        let Some(tracker) = socket.extensions.get::<Arc<Tracker>>() else { continue };
        let _writing = tracker.writing().await;
        release_session(state, &tracker.session, &tracker.session_now(&socket)).await;
    }
    if count > 0 {
        tracing::info!(sessions = count, "recovery: sessions kept for resumption elsewhere");
    }
}

async fn release_session(state: &AppState, id: &str, session: &Session) {
    if let Err(e) = state.broker.release_session(id, session).await {
        tracing::warn!(error = %e, "recovery: session not released");
    }
}

/// An opted-in socket's session id and what to keep of it.
pub fn session_of(socket: &SocketRef) -> Option<(String, Session)> {
    let tracker = socket.extensions.get::<Arc<Tracker>>()?;
    Some((tracker.session.clone(), tracker.session_now(socket)))
}
