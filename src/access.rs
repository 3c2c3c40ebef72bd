//! Who may read which room: the rule behind history polling. A user reads his own user room,
//! his organization's and tenant's rooms, the projects and channels he is a member of, the
//! invitations he may watch, and public channels.

use sea_orm::DatabaseConnection;

use crate::auth::Identity;
use crate::directory::{self, MembershipKey, ResourceKind};
use crate::invitations;
use crate::rooms::{ChannelPattern, Room};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("you may not read `{0}`")]
    Forbidden(String),
    #[error("the directory could not be read")]
    Unavailable,
}

/// Whether `identity` may read `room`; `patterns` are the public channels.
pub async fn may_read(
    db: &DatabaseConnection,
    patterns: &[ChannelPattern],
    identity: &Identity,
    room: &Room,
) -> Result<(), AccessError> {
    let forbidden = || Err(AccessError::Forbidden(room.name()));
    let same = |claim: &Option<String>, id: &str| claim.as_deref() == Some(id);
    match room {
        Room::User(u) if *u == identity.user_id => Ok(()),
        Room::Org(o) if same(&identity.organization_id, o) => Ok(()),
        Room::Tenant(t) if same(&identity.tenant_id, t) => Ok(()),
        Room::Project { tenant, project } if same(&identity.tenant_id, tenant) => {
            member(db, identity, tenant, ResourceKind::Project, project, room).await
        }
        Room::Channel { tenant, channel } if same(&identity.tenant_id, tenant) => {
            member(db, identity, tenant, ResourceKind::Channel, channel, room).await
        }
        Room::Invitation(id) => {
            invitations::may_watch(db, identity.organization_id.as_deref(), id).await.map_err(|refusal| match refusal {
                invitations::WatchRefusal::Unavailable => AccessError::Unavailable,
                invitations::WatchRefusal::Unknown(_) | invitations::WatchRefusal::OtherOrganization(_) => {
                    AccessError::Forbidden(room.name())
                }
            })
        }
        Room::Named(name) if is_public(patterns, name) => Ok(()),
        _ => forbidden(),
    }
}

fn is_public(patterns: &[ChannelPattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

async fn member(
    db: &DatabaseConnection,
    identity: &Identity,
    tenant: &str,
    kind: ResourceKind,
    resource: &str,
    room: &Room,
) -> Result<(), AccessError> {
    let key = MembershipKey {
        tenant_id: tenant.to_owned(),
        kind,
        resource_id: resource.to_owned(),
        user_id: identity.user_id.clone(),
    };
    match directory::find_membership(db, &key).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(AccessError::Forbidden(room.name())),
        Err(e) => {
            tracing::error!(error = %e, "membership lookup failed");
            Err(AccessError::Unavailable)
        }
    }
}
