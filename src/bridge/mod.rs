//! Everything this instance reads from Redis, on one subscriber connection:
//!
//! - [`redis_json`]: the JSON channels backends publish to: `invitation-updates`,
//!   `notifications`, and `switchyard:publish` (a publish request as `POST /api/events` takes).
//! - [`emitter`]: the Node `@socket.io/redis-emitter` broadcasts and requests.
//! - the deliver channel of [`crate::publish::fanout`]: publications from every instance.
//!
//! Messages are handled in the order Redis delivers them. A lost connection is retried with
//! backoff and every channel subscribed again. [`RedisLink`] records whether Redis answers, for
//! the status and readiness endpoints.

pub mod emitter;
pub mod redis_json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::publish::fanout::{DELIVER_CHANNEL, REPLY_CHANNEL, ROOMS_CHANNEL};
use crate::state::AppState;

/// Runs the subscriber until `shutdown` is cancelled.
pub async fn run(state: AppState, url: String, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&state, &url) => r,
        };
        state.redis.set_connected(false);
        match result {
            Ok(()) => tracing::warn!("redis: subscriber connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "redis: subscriber connection failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: subscribe, then handle messages until the connection drops.
async fn session(state: &AppState, url: &str) -> redis::RedisResult<()> {
    let prefix = state.settings.redis_channel_prefix.as_str();
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    let mut channels: Vec<String> = redis_json::CHANNELS.iter().map(|c| format!("{prefix}{c}")).collect();
    channels.push(format!("{prefix}{DELIVER_CHANNEL}"));
    let rooms = format!("{prefix}{ROOMS_CHANNEL}");
    let replies = format!("{prefix}{REPLY_CHANNEL}{}", state.instance.id);
    channels.push(rooms.clone());
    channels.push(replies.clone());
    let emitter_requests = format!("{prefix}{}-request#/#", emitter::KEY);
    channels.push(emitter_requests.clone());
    pubsub.subscribe(&channels).await?;
    let emitter_broadcasts = format!("{prefix}{}#/#", emitter::KEY);
    pubsub.psubscribe(format!("{emitter_broadcasts}*")).await?;
    state.redis.set_connected(true);
    tracing::info!(?channels, "redis: subscribed");

    let deliver = format!("{prefix}{DELIVER_CHANNEL}");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes();
        let result = if channel == deliver {
            state.publisher.deliver_remote(payload).await
        } else if channel == rooms {
            state.publisher.room_op_received(payload).await
        } else if channel == replies {
            state.publisher.count_reply_received(payload)
        } else if channel == emitter_requests {
            emitter::apply_request(state, payload).await
        } else if channel.starts_with(&emitter_broadcasts) {
            match emitter::decode_broadcast(payload) {
                Ok(Some(broadcast)) => {
                    emitter::deliver(state, broadcast).await;
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            let name = channel.strip_prefix(prefix).unwrap_or(channel);
            redis_json::handle(state, name, payload).await
        };
        if let Err(reason) = result {
            tracing::warn!(%channel, %reason, "redis: message dropped");
        }
    }
    Ok(())
}

/// The state of this instance's Redis connection.
#[derive(Debug, Default)]
pub struct RedisLink {
    configured: bool,
    connected: AtomicBool,
}

impl RedisLink {
    pub fn new(configured: bool) -> Self {
        RedisLink {
            configured,
            connected: AtomicBool::new(false),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// `disabled` (no Redis configured), `connected` or `disconnected`.
    pub fn status(&self) -> &'static str {
        match (self.configured, self.connected.load(Ordering::Relaxed)) {
            (false, _) => "disabled",
            (true, true) => "connected",
            (true, false) => "disconnected",
        }
    }
}
