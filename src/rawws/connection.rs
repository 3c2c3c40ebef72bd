//! One plain WebSocket connection: authenticate, join rooms, then read client messages, send
//! queued frames, ping, and close with a reason when the client is slow, silent or the server
//! stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use http::{HeaderMap, Uri};

use super::catch_up::catch_up_or_release;
use super::messages;
use super::outgoing::{connections, reply};
use super::refusal::Refusal;
use crate::auth::Identity;
use crate::auth::token::{find_token, query_param};
use crate::event::EventName;
use crate::history::Since;
use crate::hub::Outbox;
use crate::hub::plain::{self, Dialect, Kick};
use crate::lifetime::{Conn, Due};
use crate::limits::Bucket;
use crate::notifications;
use crate::rooms::Room;
use crate::state::AppState;

/// Close codes (RFC 6455): policy violation, going away, try again later.
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_RESTART: u16 = 1012;
/// Close code (RFC 6455): a message too big to process.
const CLOSE_TOO_BIG: u16 = 1009;
/// Initial read buffer of a plain WebSocket connection. tungstenite's default, 128 KiB, was
/// almost all of an idle connection's 150 KB; clients send small JSON frames, and the buffer
/// grows for a larger one (up to `MAX_PAYLOAD`).
const READ_BUFFER: usize = 256;

pub async fn channels_endpoint(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let auth = state.authenticate(find_token(None, &headers, uri.query())).await.map_err(Refusal::from);
    upgrade(ws, state, auth, since_param(uri.query()), Dialect::Channels)
}

/// `/api/ws?token=...`; the contract's `userId`/`role` are accepted only when they match the
/// token, or without a token when `WS_ALLOW_USER_QUERY` says so (development).
pub async fn commerce_endpoint(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query();
    let claimed_user = query.and_then(|q| query_param(q, "userId"));
    let token = find_token(None, &headers, query);
    let auth = match (token, claimed_user) {
        (None, Some(user)) if state.settings.ws_allow_user_query => match Room::user(&user) {
            Ok(_) => Ok(Identity {
                user_id: user,
                organization_id: None,
                tenant_id: None,
                role: query.and_then(|q| query_param(q, "role")),
                email_verified: None,
                expires_at: i64::MAX,
            }),
            Err(e) => Err(Refusal::new("invalid_user", e.to_string())),
        },
        (token, claimed) => match state.authenticate(token).await {
            Ok(identity) if claimed.as_ref().is_some_and(|u| *u != identity.user_id) => {
                Err(Refusal::new("user_mismatch", "userId does not match the token's user"))
            }
            Ok(identity) => Ok(identity),
            Err(e) => Err(e.into()),
        },
    };
    upgrade(ws, state, auth, since_param(query), Dialect::Commerce)
}

/// `?since=`: replay the home rooms' history after it (an offset or an RFC 3339 time).
fn since_param(query: Option<&str>) -> Result<Option<Since>, Refusal> {
    match query.and_then(|q| query_param(q, "since")).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => Since::parse(&text).map(Some).ok_or_else(|| {
            Refusal::new("invalid_since", format!("`{text}` is neither an offset nor an RFC 3339 time"))
        }),
    }
}

fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    auth: Result<Identity, Refusal>,
    since: Result<Option<Since>, Refusal>,
    dialect: Dialect,
) -> Response {
    let max = state.settings.max_payload;
    ws.max_message_size(max).max_frame_size(max).read_buffer_size(READ_BUFFER).on_upgrade(move |socket| {
        // A task of its own, spawned once the upgrade is done: axum's upgrade task is
        // allocated while the handshake's buffers are alive and would hold this connection's
        // state inline for its whole life, between them in the heap.
        match auth.and_then(|identity| Ok((identity, since?))) {
            Ok((identity, since)) => {
                let identity = Mutex::new(identity);
                tokio::spawn(serve(Box::new(Upgraded { state, socket, dialect, identity, since })));
            }
            Err(refusal) => {
                tokio::spawn(refuse(socket, refusal));
            }
        }
        std::future::ready(())
    })
}

/// An upgraded connection's wiring, socket and user, boxed once and borrowed from then on: an
/// async fn keeps its arguments, and each local it holds across an await, for its whole life
/// (rust-lang/rust#62958), so passing these by value held them several times in every
/// connection's task.
struct Upgraded {
    state: AppState,
    socket: WebSocket,
    dialect: Dialect,
    /// Renewed by a `refresh` message.
    identity: Mutex<Identity>,
    /// `?since=`: the history to replay first.
    since: Option<Since>,
}

/// Tells the client why, then closes.
async fn refuse(mut socket: WebSocket, refusal: Refusal) {
    refuse_on(&mut socket, refusal).await;
}

async fn refuse_on(socket: &mut WebSocket, refusal: Refusal) {
    tracing::info!(code = refusal.code, "plain websocket refused");
    let _ = socket.send(Message::Text(refusal.frame().into())).await;
    let _ = socket.send(close(CLOSE_POLICY, refusal.code)).await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason.to_owned()) }))
}

async fn serve(mut upgraded: Box<Upgraded>) {
    let Upgraded { state, socket, dialect, identity: user, since } = &mut *upgraded;
    let (state, dialect, since) = (&*state, *dialect, since.take());
    let identity = user.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Err(refused) = Box::pin(state.admit(identity)).await {
        return refuse_on(socket, refused.into()).await;
    }
    let hub = state.hub.plain();
    let registration = hub.register(dialect, state.settings.ws_send_queue);
    let id = registration.id.clone();
    state.lifetimes.bind(Conn::Plain(id.clone()), identity.expires_at);
    if since.is_some() {
        hub.hold(&id);
    }
    let mut rooms = identity.home_rooms();
    if dialect == Dialect::Commerce {
        // Store updates go to every customer.
        rooms.push(Room::stores());
    }
    {
        // Scoped: held across the connection's loop, the names stayed allocated for its life.
        let names: Vec<String> = rooms.iter().map(Room::name).collect();
        state.broker.want(&names).await;
        for room in &names {
            hub.join(&id, room);
        }
    }
    tracing::info!(conn = %id, user = %identity.user_id, ?dialect, "plain websocket connected");
    state.presence.count_in(&identity.user_id);
    // The futures awaited once around the connection's loop are boxed: held inline, the largest
    // of them (presence sync, a database read) would size this connection's task for its life.
    Box::pin(state.sync_presence(identity)).await;
    // The user's notifications that reached none of his connections, to this one only.
    for (notification_id, data) in Box::pin(notifications::undelivered(&state.db, &identity.user_id)).await {
        let event = EventName::NOTIFICATION_NEW;
        hub.send_to(&id, plain::frame(dialect, event.as_str(), &data, &notification_id, None, None));
    }

    let catching_up: Option<Handling<'_>> = since.map(|since| {
        let history = &state.history;
        let kept: Vec<Room> = rooms.into_iter().filter(|r| history.keeps(r)).collect();
        let id = id.as_str();
        Box::pin(async move {
            catch_up_or_release(state, id, dialect, &kept, since).await;
            None
        }) as Handling<'_>
    });
    let connection = Connection { state, id: &id, identity: user, dialect, outbox: &registration.outbox };
    let reason = connection.run(socket, catching_up).await;
    if matches!(reason, End::SlowConsumer) {
        state.metrics.slow_disconnected(crate::metrics::Transport::WebSocket);
    }
    let identity = user.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());

    // Stop delivering before closing, so the queue cannot refill.
    hub.unregister(&id);
    state.lifetimes.forget(&Conn::Plain(id.clone()));
    let last_word = match reason {
        End::Expired => Some(Refusal::new("token_expired", "the token expired; connect again with a new one")),
        End::TooBig => Some(Refusal::new("payload_too_large", "a message was larger than MAX_PAYLOAD")),
        End::Revoked => Some(Refusal::new("user_revoked", "the user was deleted or unverified in the directory")),
        _ => None,
    };
    let (code, text) = match reason {
        End::ClientClosed => (None, "client closed"),
        End::Silent => (Some(CLOSE_GOING_AWAY), "ping timeout"),
        End::SlowConsumer => (Some(CLOSE_POLICY), "slow consumer: send queue full"),
        End::Disconnected => (Some(CLOSE_POLICY), "disconnected by the server"),
        End::Expired => (Some(CLOSE_POLICY), "token_expired"),
        End::TooBig => (Some(CLOSE_TOO_BIG), "payload_too_large"),
        End::Revoked => (Some(CLOSE_POLICY), "user_revoked"),
        End::Shutdown => (Some(CLOSE_RESTART), "server restarting"),
    };
    // The last words; a slow consumer's socket may be full: give it a moment, then cut.
    let goodbye = async {
        if let Some(refusal) = last_word {
            socket.send(Message::Text(refusal.frame().into())).await?;
        }
        match code {
            Some(code) => socket.send(close(code, text)).await,
            None => SinkExt::close(socket).await,
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    tracing::info!(conn = %id, reason = text, "plain websocket closed");
    state.presence.count_out(&identity.user_id);
    Box::pin(state.sync_presence(identity)).await;
    if matches!(reason, End::TooBig) {
        // The rest of the oversized message is still unread: closing now would reset the
        // connection and the client would see 1006 instead of the 1009 just sent. Held (unread)
        // a moment, the close frame reaches the client first.
        Box::pin(tokio::time::sleep(TOO_BIG_LINGER)).await;
    }
}

/// How long a connection closed for an oversized message is held open after its close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(1);

enum End {
    ClientClosed,
    Silent,
    SlowConsumer,
    Disconnected,
    Expired,
    Revoked,
    TooBig,
    Shutdown,
}

/// A client message being answered, or the history being replayed: one at a time, while the
/// connection goes on writing (a replay waits on the queue the writes drain).
type Handling<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

/// What one connection's loop works with.
#[derive(Clone, Copy)]
struct Connection<'a> {
    state: &'a AppState,
    id: &'a str,
    identity: &'a Mutex<Identity>,
    dialect: Dialect,
    outbox: &'a Outbox,
}

impl<'a> Connection<'a> {
    /// The connection's one task: reads client messages, writes what is queued, pings, and
    /// returns why it ended. One task per connection, no channel: an idle connection holds
    /// its socket, an empty queue and this loop's state.
    async fn run(&self, socket: &mut WebSocket, mut handling: Option<Handling<'a>>) -> End {
        let state = self.state;
        let interval = state.settings.ws_ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let mut ping_due = false;
        let mut last_heard = Instant::now();
        let bucket = Bucket::new(state.settings.client_event_rate);
        loop {
            let frames = self.outbox.take();
            if !frames.is_empty() || ping_due {
                let ping = std::mem::take(&mut ping_due).then(|| Message::Ping(Default::default()));
                let write = async {
                    for message in ping.into_iter().chain(frames.into_iter().map(Message::Text)) {
                        socket.feed(message).await?;
                    }
                    socket.flush().await
                };
                tokio::select! {
                    written = write => if written.is_err() {
                        return End::ClientClosed;
                    },
                    why = self.outbox.wait_ended() => return ended_by(why),
                    _ = state.shutdown.cancelled() => return End::Shutdown,
                }
            }
            if let Some(why) = self.outbox.ended() {
                return ended_by(why);
            }
            tokio::select! {
                () = self.outbox.wait() => {}
                answer = async { handling.as_mut().expect("guarded").await }, if handling.is_some() => {
                    handling = None;
                    if let Some(frame) = answer {
                        reply(state, self.id, frame);
                    }
                }
                message = socket.recv(), if handling.is_none() => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        // tungstenite refuses a frame over `max_message_size` with this error.
                        Some(Err(e)) if e.to_string().contains("Message too long") => return End::TooBig,
                        _ => return End::ClientClosed,
                    };
                    last_heard = Instant::now();
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => return End::ClientClosed,
                        Message::Binary(_) => {
                            reply(state, self.id, Refusal::new("unsupported_frame", "send JSON text frames").frame());
                            continue;
                        }
                        Message::Ping(_) | Message::Pong(_) => continue,
                    };
                    if !bucket.take() {
                        state.metrics.rate_limited();
                        reply(state, self.id, Refusal::new("rate_limited", "too many messages; slow down (CLIENT_EVENT_RATE)").frame());
                        continue;
                    }
                    let this = *self;
                    handling = Some(Box::pin(async move {
                        match messages::handle(this.state, this.id, this.identity, this.dialect, text.as_str()).await {
                            Ok(answer) => answer,
                            Err(refusal) => Some(refusal.frame()),
                        }
                    }));
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > interval * 2 {
                        return End::Silent;
                    }
                    ping_due = true;
                }
                _ = state.shutdown.cancelled() => return End::Shutdown,
            }
        }
    }
}

fn ended_by(why: Kick) -> End {
    match why {
        Kick::Disconnected => End::Disconnected,
        Kick::Expired => End::Expired,
        Kick::Revoked => End::Revoked,
        Kick::SlowConsumer => End::SlowConsumer,
        Kick::Draining => End::Shutdown,
    }
}

/// Ends a plain WebSocket connection of this instance whose token expired.
pub fn came_due(state: &AppState, due: &Due) {
    if let Due::Expired(Conn::Plain(id), _) = due {
        tracing::info!(conn = %id, "token expired: closing");
        connections(state).kick(id, Kick::Expired);
    }
}
