//! Invitation status changes: from `POST /invitation-update`, the Redis channel
//! `invitation-updates` and the expiry job alike. Each is recorded in the directory and
//! published as `invitation-update` to the invitation's watchers.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::directory::{self, InvitationRecord, InvitationStatus};
use crate::event::EventName;
use crate::publication::{Audience, Publication, RoomAction, RoomOp, Source};
use crate::publish::{PublishError, Publisher, Receipt};
use crate::rooms::{self, Room};

/// The body the invitations contract documents; also what watchers receive.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvitationUpdate {
    #[serde(deserialize_with = "required_id")]
    pub invitation_id: String,
    pub status: InvitationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

fn required_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = crate::id::deserialize_optional(d)?
        .ok_or_else(|| serde::de::Error::custom("invitationId must not be empty"))?;
    rooms::id("invitationId", &id).map_err(serde::de::Error::custom)
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Records the new status (creating the invitation if the directory did not know it) and tells
/// every watcher.
pub async fn apply(
    db: &DatabaseConnection,
    publisher: &Publisher,
    update: InvitationUpdate,
    source: Source,
) -> Result<Receipt, UpdateError> {
    let existing = directory::find_invitation(db, &update.invitation_id).await?;
    let record = InvitationRecord {
        organization_id: existing.as_ref().and_then(|i| i.organization_id.clone()),
        email: existing.as_ref().and_then(|i| i.email.clone()),
        status: update.status,
        expires_at: update.expires_at.or(existing.as_ref().and_then(|i| i.expires_at)),
        used_at: update.used_at.or(existing.as_ref().and_then(|i| i.used_at)),
        revoked_at: update.revoked_at.or(existing.as_ref().and_then(|i| i.revoked_at)),
    };
    directory::put_invitation(db, &update.invitation_id, record).await?;
    Ok(publish(publisher, &update, source).await?)
}

/// Publishes an update that is already recorded.
pub async fn publish(
    publisher: &Publisher,
    update: &InvitationUpdate,
    source: Source,
) -> Result<Receipt, PublishError> {
    let room = Room::Invitation(update.invitation_id.clone());
    let data = serde_json::to_value(update).expect("serializable");
    publisher.publish(Publication::new(EventName::INVITATION_UPDATE, Audience::rooms(vec![room]), data, source)).await
}

/// Why a socket may not watch an invitation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchRefusal {
    /// The directory does not know whose the invitation is: it never heard of it, or only from
    /// a status update (`POST /invitation-update`, the Redis channel), which names no
    /// organization. Nobody may watch it until its backend registers it.
    #[error(
        "invitation `{0}` has no organization in the directory yet; its backend registers it with PUT /api/invitations/{{id}}"
    )]
    Unknown(String),
    #[error("invitation `{0}` belongs to another organization")]
    OtherOrganization(String),
    #[error("the invitation directory could not be read")]
    Unavailable,
}

/// The one rule of who may watch an invitation (and read its room's history): a user of the
/// organization the directory says it belongs to. An invitation whose organization is not known
/// is refused: a watcher admitted before its backend registered it could be of any
/// organization, and would then receive another organization's updates. The rule is enforced
/// again whenever the directory changes an invitation's organization ([`evict_watchers`]).
pub async fn may_watch(
    db: &DatabaseConnection,
    organization_id: Option<&str>,
    invitation_id: &str,
) -> Result<(), WatchRefusal> {
    let invitation = directory::find_invitation(db, invitation_id).await.map_err(|e| {
        tracing::error!(error = %e, "invitation lookup failed");
        WatchRefusal::Unavailable
    })?;
    match invitation.and_then(|i| i.organization_id) {
        None => Err(WatchRefusal::Unknown(invitation_id.to_owned())),
        Some(owner) if Some(owner.as_str()) == organization_id => Ok(()),
        Some(_) => Err(WatchRefusal::OtherOrganization(invitation_id.to_owned())),
    }
}

/// After the directory recorded that `invitation_id` belongs to `organization_id` (`None`: to
/// no known organization, or it was deleted): every socket watching it that is not of that
/// organization leaves its room, on every instance. Sockets join their organization's room
/// at connect (and move with a token refresh), so "not of it" is "not in `org:{id}`".
pub async fn evict_watchers(publisher: &Publisher, invitation_id: &str, organization_id: Option<&str>) {
    let room = Room::Invitation(invitation_id.to_owned());
    let allowed = organization_id.and_then(|org| Room::org(org).ok());
    let target = Audience::except(vec![room.clone()], allowed.into_iter().collect());
    publisher.apply(RoomOp { target, action: RoomAction::Leave(vec![room.name()]) }).await;
}
