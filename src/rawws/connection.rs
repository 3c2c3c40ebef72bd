//! One plain WebSocket connection: authenticate, join rooms, then read client messages, send
//! queued frames, ping, and close with a reason when the client is slow, silent or the server
//! stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Uri};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::catch_up;
use super::refusal::Refusal;
use crate::auth::token::{find_token, query_param};
use crate::auth::Identity;
use crate::event::EventName;
use crate::lifetime::{Conn, Due};
use crate::limits::Bucket;
use crate::hub::plain::{self, Dialect, Kick, PlainConnections};
use crate::notifications;
use crate::publish::history::Since;
use crate::rooms::Room;
use crate::state::AppState;
use crate::subscriptions;

/// Close codes (RFC 6455): policy violation, going away, try again later.
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_RESTART: u16 = 1012;
/// Close code (RFC 6455): a message too big to process.
const CLOSE_TOO_BIG: u16 = 1009;
/// Initial read buffer of a plain WebSocket connection. tungstenite's default, 128 KiB, was
/// almost all of an idle connection's 150 KB; clients send small JSON frames, and the buffer
/// grows for a larger one (up to `MAX_PAYLOAD`).
const READ_BUFFER: usize = 1024;

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
            Ok(identity) if claimed.as_ref().is_some_and(|u| *u != identity.user_id) => Err(Refusal::new(
                "user_mismatch",
                "userId does not match the token's user",
            )),
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
        Some(text) => Since::parse(&text)
            .map(Some)
            .ok_or_else(|| Refusal::new("invalid_since", format!("`{text}` is neither an offset nor an RFC 3339 time"))),
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
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let admitted = match auth.and_then(|identity| Ok((identity, since?))) {
                Ok((identity, since)) => state.admit(&identity).await.map(|()| (identity, since)).map_err(Refusal::from),
                Err(refusal) => Err(refusal),
            };
            match admitted {
                Ok((identity, since)) => serve(state, socket, identity, since, dialect).await,
                Err(refusal) => refuse(socket, refusal).await,
            }
        })
}

/// Tells the client why, then closes.
async fn refuse(mut socket: WebSocket, refusal: Refusal) {
    tracing::info!(code = refusal.code, "plain websocket refused");
    let _ = socket.send(Message::Text(refusal.frame().into())).await;
    let _ = socket.send(close(CLOSE_POLICY, refusal.code)).await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }))
}

async fn serve(state: AppState, socket: WebSocket, identity: Identity, since: Option<Since>, dialect: Dialect) {
    let mut identity = identity;
    let hub = state.publisher.hub().plain();
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
    for room in &rooms {
        hub.join(&id, &room.name());
    }
    tracing::info!(conn = %id, user = %identity.user_id, ?dialect, "plain websocket connected");
    state.presence.count_in(&identity.user_id);
    state.sync_presence(&identity).await;
    // The user's notifications that reached none of his connections, to this one only.
    for (notification_id, data) in notifications::undelivered(&state.db, &identity.user_id).await {
        let event = EventName::NOTIFICATION_NEW;
        hub.send_to(&id, plain::frame(dialect, event.as_str(), &data, &notification_id, None, None));
    }

    let (sink, stream) = socket.split();
    let (control, control_rx) = mpsc::channel::<Message>(8);
    let writer = tokio::spawn(write_frames(sink, registration.frames, control_rx));
    if let Some(since) = since {
        let history = state.publisher.history();
        let kept: Vec<Room> = rooms.into_iter().filter(|r| history.keeps(r)).collect();
        catch_up_or_release(&state, &id, dialect, &kept, since).await;
    }
    let reason = read_loop(&state, &id, &mut identity, dialect, stream, &control, registration.kicked).await;

    // Stop delivering before closing, so the queue cannot refill.
    hub.unregister(&id);
    state.lifetimes.forget(&Conn::Plain(id.clone()));
    let last_word = match reason {
        End::Expired => Some(Refusal::new("token_expired", "the token expired; connect again with a new one")),
        End::TooBig => Some(Refusal::new("payload_too_large", "a message was larger than MAX_PAYLOAD")),
        End::Revoked => Some(Refusal::new("user_revoked", "the user was deleted or unverified in the directory")),
        _ => None,
    };
    if let Some(refusal) = last_word {
        let _ = control.try_send(Message::Text(refusal.frame().into()));
    }
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
    if let Some(code) = code {
        let _ = control.try_send(close(code, text));
    }
    drop(control);
    // A slow consumer's writer may be stuck on a full socket: give it a moment, then cut.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), writer).await.is_err() {
        abort.abort();
    }
    tracing::info!(conn = %id, reason = text, "plain websocket closed");
    state.presence.count_out(&identity.user_id);
    state.sync_presence(&identity).await;
}

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

async fn read_loop(
    state: &AppState,
    id: &str,
    identity: &mut Identity,
    dialect: Dialect,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    control: &mpsc::Sender<Message>,
    mut kicked: tokio::sync::watch::Receiver<Option<Kick>>,
) -> End {
    let interval = state.settings.ws_ping_interval;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut last_heard = Instant::now();
    let bucket = Bucket::new(state.settings.client_event_rate);
    loop {
        tokio::select! {
            message = stream.next() => {
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
                        reply(state, id, Refusal::new("unsupported_frame", "send JSON text frames").frame());
                        continue;
                    }
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if !bucket.take() {
                    state.metrics.rate_limited();
                    reply(state, id, Refusal::new("rate_limited", "too many messages; slow down (CLIENT_EVENT_RATE)").frame());
                    continue;
                }
                match handle(state, id, identity, dialect, text.as_str()).await {
                    Ok(Some(answer)) => reply(state, id, answer),
                    Ok(None) => {}
                    Err(refusal) => reply(state, id, refusal.frame()),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > interval * 2 {
                    return End::Silent;
                }
                let _ = control.try_send(Message::Ping(Default::default()));
            }
            _ = kicked.changed() => return match *kicked.borrow() {
                Some(Kick::Disconnected) => End::Disconnected,
                Some(Kick::Expired) => End::Expired,
                Some(Kick::Revoked) => End::Revoked,
                _ => End::SlowConsumer,
            },
            _ = state.shutdown.cancelled() => return End::Shutdown,
        }
    }
}

fn reply(state: &AppState, id: &str, frame: String) {
    connections(state).send_to(id, frame.into());
}

fn connections(state: &AppState) -> &PlainConnections {
    state.publisher.hub().plain()
}

/// Answers one client message (`None`: it answered itself).
async fn handle(state: &AppState, id: &str, identity: &mut Identity, dialect: Dialect, text: &str) -> Result<Option<String>, Refusal> {
    let message: Value =
        serde_json::from_str(text).map_err(|e| Refusal::new("invalid_json", format!("not JSON: {e}")))?;
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::new("invalid_message", "a message needs a string `type`"))?;
    match kind {
        "ping" => Ok(Some(json!({"type": "pong"}).to_string())),
        "refresh" => {
            let token = message
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("invalid_message", "`refresh` needs a string `token`"))?;
            let renewed = state.authenticate(Some(token.to_owned())).await?;
            if renewed.user_id != identity.user_id {
                return Err(Refusal::new("token_user_mismatch", "the new token is another user's"));
            }
            let hub = connections(state);
            let (old, new) = (identity.home_rooms(), renewed.home_rooms());
            old.iter().filter(|r| !new.contains(r)).for_each(|r| hub.leave(id, &r.name()));
            new.iter().filter(|r| !old.contains(r)).for_each(|r| hub.join(id, &r.name()));
            state.lifetimes.bind(Conn::Plain(id.to_owned()), renewed.expires_at);
            let expires_at = chrono::DateTime::<chrono::Utc>::from_timestamp(renewed.expires_at, 0).unwrap_or_default();
            *identity = renewed;
            Ok(Some(json!({"type": "refreshed", "expiresAt": expires_at.to_rfc3339()}).to_string()))
        }
        "subscribe" | "unsubscribe" => {
            let channel = message
                .get("channel")
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::new("invalid_message", format!("`{kind}` needs a string `channel`")))?;
            let patterns = &state.settings.channel_patterns;
            let hub = connections(state);
            if kind == "subscribe" {
                let current = hub.rooms_of(id);
                let limit = state.settings.max_subscriptions;
                let room = subscriptions::subscribe(patterns, limit, channel, current.iter().map(String::as_str))?;
                let since = match message.get("since").filter(|v| !v.is_null()) {
                    None => {
                        hub.join(id, &room.name());
                        return Ok(Some(json!({"type": "subscribed", "channel": channel}).to_string()));
                    }
                    Some(since) => catch_up::parse_since(since).ok_or_else(|| {
                        Refusal::new("invalid_since", "`since` is an offset or an RFC 3339 time")
                    })?,
                };
                if !state.publisher.history().keeps(&room) {
                    return Err(Refusal::new(
                        "history_unavailable",
                        format!("`{channel}` keeps no history (HISTORY_ROOMS); subscribe without `since`"),
                    ));
                }
                hub.hold(id);
                hub.join(id, &room.name());
                reply(state, id, json!({"type": "subscribed", "channel": channel}).to_string());
                catch_up_or_release(state, id, dialect, &[room], since).await;
                Ok(None)
            } else {
                let room = subscriptions::unsubscribe(patterns, channel)?;
                hub.leave(id, &room.name());
                Ok(Some(json!({"type": "unsubscribed", "channel": channel}).to_string()))
            }
        }
        other => Err(Refusal::new(
            "unknown_type",
            format!("`{other}` is not one of subscribe, unsubscribe, refresh, ping"),
        )),
    }
}

/// Ends a plain WebSocket connection of this instance whose token expired.
pub fn came_due(state: &AppState, due: &Due) {
    if let Due::Expired(Conn::Plain(id), _) = due {
        tracing::info!(conn = %id, "token expired: closing");
        connections(state).kick(id, Kick::Expired);
    }
}

/// Replays history (see [`catch_up`]); if it cannot be read, says so and delivers live.
async fn catch_up_or_release(state: &AppState, id: &str, dialect: Dialect, rooms: &[Room], since: Since) {
    if let Err(e) = catch_up::replay(state, id, dialect, rooms, since).await {
        tracing::warn!(conn = %id, error = %e, "history replay failed");
        connections(state).release(id, &[]);
        reply(state, id, Refusal::new("history_unavailable", "the history could not be read; live delivery continues").frame());
    }
}

/// Sends queued deliveries and control frames until both queues close or the socket fails.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Arc<str>>,
    mut control: mpsc::Receiver<Message>,
) {
    loop {
        let message = tokio::select! {
            biased;
            m = control.recv() => match m {
                Some(m) => m,
                None => break,
            },
            f = frames.recv() => match f {
                Some(f) => Message::Text(Utf8Bytes::from(f.as_ref())),
                None => break,
            },
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
