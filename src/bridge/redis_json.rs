//! The JSON channels: each message becomes a publication. A message that does not parse is
//! refused with its reason (the subscriber logs it and goes on).

use serde_json::Value;

use super::Bridge;
use crate::cluster::BackendChannel;
use crate::invitations::{self, InvitationUpdate};
use crate::notifications::{self, Recipient};
use crate::publication::Source;
use crate::publish::PublishRequest;

/// Handles one message this instance claimed.
pub async fn handle(bridge: &Bridge, channel: BackendChannel, payload: &[u8]) -> Result<(), String> {
    match channel {
        BackendChannel::InvitationUpdates => {
            let update: InvitationUpdate = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            invitations::apply(&bridge.db, &bridge.publisher, update, Source::RedisJson)
                .await
                .map_err(|e| e.to_string())?;
        }
        BackendChannel::Notifications => {
            let notification: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let recipient = Recipient::of(&notification).ok_or("a notification names no userId or organizationId")?;
            notifications::notify(&bridge.publisher, &recipient, notification, Source::RedisJson)
                .await
                .map_err(|e| e.to_string())?;
        }
        BackendChannel::Publish => {
            let request: PublishRequest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let publication = request
                .into_publication(&bridge.catalogue, bridge.events_allow_unknown, Source::RedisJson)
                .map_err(|e| e.to_string())?;
            bridge.publisher.publish(publication).await.map_err(|e| e.to_string())?;
        }
        other => return Err(format!("`{}` is not a JSON channel", other.name())),
    }
    Ok(())
}
