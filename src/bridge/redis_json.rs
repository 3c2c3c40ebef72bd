//! The JSON channels: each message becomes a publication. A message that does not parse is
//! refused with its reason (the subscriber logs it and goes on).
//!
//! Every instance of a cluster reads these channels; see [`handle`] for how a message still
//! takes effect once.

use serde_json::Value;

use crate::invitations::{self, InvitationUpdate};
use crate::notifications::{self, Recipient};
use crate::publish::{PublishRequest, Source};
use crate::state::AppState;

/// Channel names as the contracts give them; `REDIS_CHANNEL_PREFIX` is put before each.
pub const INVITATION_UPDATES: &str = "invitation-updates";
pub const NOTIFICATIONS: &str = "notifications";
pub const PUBLISH: &str = "switchyard:publish";
pub const CHANNELS: [&str; 3] = [INVITATION_UPDATES, NOTIFICATIONS, PUBLISH];

/// Handles one message of channel `name` (without the prefix). Of the instances that read it,
/// one claims it and publishes it through the cluster, so it reaches every subscriber once.
pub async fn handle(state: &AppState, name: &str, payload: &[u8]) -> Result<(), String> {
    if !state.publisher.claim(name, payload).await {
        return Ok(());
    }
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
