//! Subscribes to the JSON channels and turns each message into a publication. A message that
//! does not parse is logged with its channel and reason and dropped; the bridge keeps going.
//! A lost connection is retried with backoff, and every channel is subscribed again.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::invitations::{self, InvitationUpdate};
use crate::notifications::{self, Recipient};
use crate::publish::{PublishRequest, Source};
use crate::state::AppState;

/// Channel names as the contracts give them; `REDIS_CHANNEL_PREFIX` is put before each.
pub const INVITATION_UPDATES: &str = "invitation-updates";
pub const NOTIFICATIONS: &str = "notifications";
pub const PUBLISH: &str = "switchyard:publish";

/// Runs until `shutdown` is cancelled.
pub async fn run(state: AppState, url: String, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&state, &url) => r,
        };
        state.redis.set_connected(false);
        match result {
            Ok(()) => tracing::warn!("redis bridge: connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "redis bridge: connection failed"),
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
    let prefix = &state.settings.redis_channel_prefix;
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    let channels: Vec<String> = [INVITATION_UPDATES, NOTIFICATIONS, PUBLISH]
        .iter()
        .map(|c| format!("{prefix}{c}"))
        .collect();
    pubsub.subscribe(&channels).await?;
    state.redis.set_connected(true);
    tracing::info!(?channels, "redis bridge: subscribed");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name().to_owned();
        let name = channel.strip_prefix(prefix.as_str()).unwrap_or(&channel);
        if let Err(reason) = handle(state, name, message.get_payload_bytes()).await {
            tracing::warn!(%channel, %reason, "redis bridge: message dropped");
        }
    }
    Ok(())
}

/// Handles one message of channel `name` (without the prefix).
pub async fn handle(state: &AppState, name: &str, payload: &[u8]) -> Result<(), String> {
    match name {
        INVITATION_UPDATES => {
            let update: InvitationUpdate = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            invitations::apply(state, update, Source::RedisJson)
                .await
                .map_err(|e| e.to_string())?;
        }
        NOTIFICATIONS => {
            let notification: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let recipient = Recipient::of(&notification)
                .ok_or("a notification names no userId or organizationId")?;
            notifications::notify(state, &recipient, notification, Source::RedisJson)
                .await
                .map_err(|e| e.to_string())?;
        }
        PUBLISH => {
            let request: PublishRequest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let publication = request
                .into_publication(&state.catalogue, state.settings.events_allow_unknown, Source::RedisJson)
                .map_err(|e| e.to_string())?;
            state.publisher.publish(publication).await.map_err(|e| e.to_string())?;
        }
        other => return Err(format!("no handler for channel `{other}`")),
    }
    Ok(())
}
