//! Connection: authenticate the handshake, put the socket in its rooms, announce presence,
//! and register the client events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::recovery;
use crate::auth::token::find_token;
use crate::auth::{AuthError, Identity};
use crate::event::EventName;
use crate::hub::Tracker;
use crate::limits::Bucket;
use crate::notifications;
use crate::rooms::Room;
use crate::sessions::digest;
use crate::state::AppState;

pub fn register(state: &AppState, io: &SocketIo) {
    let auth_state = state.clone();
    let authenticate = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let state = auth_state.clone();
        async move {
            let auth = auth.ok();
            let identity = async {
                let identity = authenticate(&state, &socket, auth.clone()).await?;
                state.admit(&identity).await?;
                Ok::<_, AuthError>(identity)
            }
            .await
            .inspect_err(|e| {
                // One line per CONNECT packet, and one polling body holds thousands: at info, a
                // peer without a token could turn its bytes into many more bytes of log.
                // `switchyard_auth_failures_total` counts every refusal by code.
                tracing::debug!(socket = %digest(socket.id), code = e.code(), "connection refused");
            })?;
            // Its home rooms, and its own id so that a backend can address exactly this socket;
            // read from Redis before it enters them.
            let mut rooms = identity.home_rooms();
            rooms.push(Room::connection(socket.id));
            let rooms: Vec<String> = rooms.iter().map(Room::name).collect();
            state.broker.want(&rooms).await;
            prepare(&state, &socket, &identity, rooms);
            socket.extensions.insert(identity.clone());
            super::lifetime::bind(&state, &socket, &identity);
            // `auth.offset` opts into recovery (a string: "" the first time, then a cursor).
            if let Some(offset) = auth.as_ref().and_then(|a| a.get("offset")).and_then(Value::as_str) {
                recovery::opt_in(&state, &socket, &identity, offset).await;
                if let Some(counted) = socket.extensions.get::<Arc<Counted>>() {
                    counted.tracked.store(true, Ordering::Relaxed);
                }
            }
            // Counted cluster-wide before the client hears it is connected: a client that
            // connects here and then closes a tab on another instance is never seen offline.
            state.sync_presence(&identity).await;
            Ok::<(), AuthError>(())
        }
    };
    let connect_state = state.clone();
    let connected = move |socket: SocketRef| {
        let state = connect_state.clone();
        async move { on_connect(state, socket).await }
    };
    io.ns("/", connected.with(authenticate));
}

/// Finds the handshake's token and authenticates it.
async fn authenticate(state: &AppState, socket: &SocketRef, auth: Option<Value>) -> Result<Identity, AuthError> {
    let parts = socket.req_parts();
    state.authenticate(find_token(auth.as_ref(), &parts.headers, parts.uri.query())).await
}

/// Everything a socket needs before the client hears it is connected: its rooms, its event
/// handlers and its disconnect handler. Done in the middleware because socketioxide sends the
/// CONNECT packet before it runs the connect handler, and a client that emits (or is published
/// to) right after `connect` would otherwise find no handler (or no room) yet.
fn prepare(state: &AppState, socket: &SocketRef, identity: &Identity, rooms: Vec<String>) {
    socket.join(rooms);

    socket.extensions.insert(Arc::new(Bucket::new(state.settings.client_event_rate)));
    let event_state = state.clone();
    socket.on_fallback(move |socket: SocketRef, Event(event): Event, TryData(data): TryData<Value>, ack: AckSender| {
        let data = data.map_err(|e| e.to_string());
        super::answer(event_state.clone(), socket, event, data, ack)
    });

    // Counted with the disconnect handler in place: a socket that closes at once is still
    // counted out (and one whose handshake is cut before it is connected, by [`Counted`]).
    state.presence.count_in(&identity.user_id);
    socket.extensions.insert(Arc::new(Counted {
        state: state.clone(),
        identity: identity.clone(),
        sid: socket.id.to_string(),
        tracked: AtomicBool::new(false),
        out: AtomicBool::new(false),
    }));
    let disconnect_state = state.clone();
    socket.on_disconnect(move |socket: SocketRef, reason: DisconnectReason| {
        let state = disconnect_state.clone();
        state.admin.socket_disconnected(&socket, &reason.to_string());
        let session = recovery::session_of(&socket);
        state.hub.drop_filters(&socket, None);
        let tracker = socket.extensions.get::<Arc<Tracker>>();
        let counted = socket.extensions.get::<Arc<Counted>>().is_some_and(|c| c.count_out());
        async move {
            tracing::info!(socket = %digest(socket.id), %reason, "disconnected");
            super::lifetime::forget(&state, &socket);
            recovery::release(&state, tracker, session).await;
            if let Some(identity) = socket.extensions.get::<Identity>()
                && counted
            {
                state.sync_presence(&identity).await;
            }
        }
    });
}

/// A socket's place in presence (and in the tracked count), given back exactly once: by its
/// disconnect handler, or by the socket's drop when socketioxide discards it without calling
/// that handler. That happens to a handshake cut while the connect middleware runs (a client
/// gone 0-5 ms after its CONNECT packet, as a flaky mobile network does): the socket is not in
/// its namespace yet, so the transport's close tells nobody, then the CONNECT packet cannot go
/// out and socketioxide drops the socket. Without this the user stayed online for good and, after
/// enough such reconnects, was refused `too_many_connections`.
struct Counted {
    state: AppState,
    /// Who was counted in (a refresh cannot have changed it before the socket connected).
    identity: Identity,
    sid: String,
    /// Opted in to recovery: counted in the hub's tracked sockets too.
    tracked: AtomicBool,
    /// Counted out already.
    out: AtomicBool,
}

impl Counted {
    /// Counts the socket out of presence; true the first time only.
    fn count_out(&self) -> bool {
        let first = !self.out.swap(true, Ordering::AcqRel);
        if first {
            self.state.presence.count_out(&self.identity.user_id);
        }
        first
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.count_out() {
            return;
        }
        tracing::debug!(socket = %digest(&self.sid), "handshake cut before the socket connected: counted out");
        if *self.tracked.get_mut() {
            self.state.hub.untrack();
        }
        self.state.lifetimes.forget(&crate::lifetime::Conn::Socket(self.sid.clone()));
        let (state, identity) = (self.state.clone(), self.identity.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { state.sync_presence(&identity).await });
        }
    }
}

async fn on_connect(state: AppState, socket: SocketRef) {
    let Some(identity) = socket.extensions.get::<Identity>() else {
        // Unreachable: the middleware always inserts it.
        let _ = socket.disconnect();
        return;
    };
    tracing::info!(socket = %digest(socket.id), user = %identity.user_id, "connected");
    state.admin.socket_connected(&socket);
    recovery::resume(&state, &socket).await;
    // The user's notifications that reached none of his connections, to this socket only.
    for (_, data) in notifications::undelivered(&state.db, &identity.user_id).await {
        state.hub.send_to(&socket, EventName::NOTIFICATION_NEW.as_str(), &data);
    }
}
