//! The directory: users, memberships and invitations as the backends report them.
//! Queries and mutations take a `&DatabaseConnection`; handlers never build queries.

use chrono::{DateTime, Utc};
use entity::{invitation, membership, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

/// What a `PUT` created or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
}

/// A backend's view of one user.
#[derive(Debug, Clone, Default)]
pub struct UserRecord {
    pub email: Option<String>,
    pub email_verified: bool,
    pub organization_id: Option<String>,
    pub tenant_id: Option<String>,
    pub role: Option<String>,
}

pub async fn find_user(db: &DatabaseConnection, id: &str) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id.to_owned()).one(db).await
}

pub async fn put_user(db: &DatabaseConnection, id: &str, record: UserRecord) -> Result<(user::Model, Upsert), DbErr> {
    let now = Utc::now();
    let existing = find_user(db, id).await?;
    let kind = if existing.is_some() { Upsert::Updated } else { Upsert::Created };
    let mut model: user::ActiveModel = match existing {
        Some(m) => m.into(),
        None => user::ActiveModel { id: Set(id.to_owned()), created_at: Set(now), ..Default::default() },
    };
    model.email = Set(record.email);
    model.email_verified = Set(record.email_verified);
    model.organization_id = Set(record.organization_id);
    model.tenant_id = Set(record.tenant_id);
    model.role = Set(record.role);
    model.updated_at = Set(now);
    let saved = match kind {
        Upsert::Created => model.insert(db).await?,
        Upsert::Updated => model.update(db).await?,
    };
    Ok((saved, kind))
}

pub async fn delete_user(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    let removed = user::Entity::delete_by_id(id.to_owned()).exec(db).await?;
    membership::Entity::delete_many().filter(membership::Column::UserId.eq(id)).exec(db).await?;
    Ok(removed.rows_affected > 0)
}

/// What a membership is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Project,
    Channel,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Project => "project",
            ResourceKind::Channel => "channel",
        }
    }
}

/// One user's membership in one tenant project or channel.
#[derive(Debug, Clone)]
pub struct MembershipKey {
    pub tenant_id: String,
    pub kind: ResourceKind,
    pub resource_id: String,
    pub user_id: String,
}

impl MembershipKey {
    fn primary_key(&self) -> (String, String, String, String) {
        (self.tenant_id.clone(), self.kind.as_str().to_owned(), self.resource_id.clone(), self.user_id.clone())
    }
}

pub async fn find_membership(db: &DatabaseConnection, key: &MembershipKey) -> Result<Option<membership::Model>, DbErr> {
    membership::Entity::find_by_id(key.primary_key()).one(db).await
}

pub async fn put_membership(
    db: &DatabaseConnection,
    key: &MembershipKey,
    role: Option<String>,
) -> Result<(membership::Model, Upsert), DbErr> {
    if let Some(existing) = find_membership(db, key).await? {
        let mut model: membership::ActiveModel = existing.into();
        model.role = Set(role);
        return Ok((model.update(db).await?, Upsert::Updated));
    }
    let model = membership::ActiveModel {
        tenant_id: Set(key.tenant_id.clone()),
        kind: Set(key.kind.as_str().to_owned()),
        resource_id: Set(key.resource_id.clone()),
        user_id: Set(key.user_id.clone()),
        role: Set(role),
        created_at: Set(Utc::now()),
    };
    Ok((model.insert(db).await?, Upsert::Created))
}

pub async fn delete_membership(db: &DatabaseConnection, key: &MembershipKey) -> Result<bool, DbErr> {
    let removed = membership::Entity::delete_by_id(key.primary_key()).exec(db).await?;
    Ok(removed.rows_affected > 0)
}

pub async fn list_members(
    db: &DatabaseConnection,
    tenant_id: &str,
    kind: ResourceKind,
    resource_id: &str,
) -> Result<Vec<membership::Model>, DbErr> {
    membership::Entity::find()
        .filter(membership::Column::TenantId.eq(tenant_id))
        .filter(membership::Column::Kind.eq(kind.as_str()))
        .filter(membership::Column::ResourceId.eq(resource_id))
        .all(db)
        .await
}

/// The lifecycle states the invitation contract documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }
}

/// A backend's view of one invitation.
#[derive(Debug, Clone)]
pub struct InvitationRecord {
    pub organization_id: Option<String>,
    pub email: Option<String>,
    pub status: InvitationStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn find_invitation(db: &DatabaseConnection, id: &str) -> Result<Option<invitation::Model>, DbErr> {
    invitation::Entity::find_by_id(id.to_owned()).one(db).await
}

pub async fn put_invitation(
    db: &DatabaseConnection,
    id: &str,
    record: InvitationRecord,
) -> Result<(invitation::Model, Upsert), DbErr> {
    let now = Utc::now();
    let existing = find_invitation(db, id).await?;
    let kind = if existing.is_some() { Upsert::Updated } else { Upsert::Created };
    let mut model: invitation::ActiveModel = match existing {
        Some(m) => m.into(),
        None => invitation::ActiveModel { id: Set(id.to_owned()), created_at: Set(now), ..Default::default() },
    };
    model.organization_id = Set(record.organization_id);
    model.email = Set(record.email);
    model.status = Set(record.status.as_str().to_owned());
    model.expires_at = Set(record.expires_at);
    model.used_at = Set(record.used_at);
    model.revoked_at = Set(record.revoked_at);
    model.updated_at = Set(now);
    let saved = match kind {
        Upsert::Created => model.insert(db).await?,
        Upsert::Updated => model.update(db).await?,
    };
    Ok((saved, kind))
}

pub async fn delete_invitation(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    let removed = invitation::Entity::delete_by_id(id.to_owned()).exec(db).await?;
    Ok(removed.rows_affected > 0)
}

/// Pending invitations whose `expiresAt` is before `now`.
pub async fn pending_invitations_expired_before(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<invitation::Model>, DbErr> {
    invitation::Entity::find()
        .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
        .filter(invitation::Column::ExpiresAt.lt(now))
        .all(db)
        .await
}

/// Sets a pending invitation to expired; false when it was no longer pending.
pub async fn mark_invitation_expired(db: &DatabaseConnection, id: &str, now: DateTime<Utc>) -> Result<bool, DbErr> {
    use sea_orm::sea_query::Expr;
    let result = invitation::Entity::update_many()
        .col_expr(invitation::Column::Status, Expr::value(InvitationStatus::Expired.as_str()))
        .col_expr(invitation::Column::UpdatedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::Status.eq(InvitationStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Users of an organization with role `admin`.
pub async fn organization_admins(db: &DatabaseConnection, organization_id: &str) -> Result<Vec<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::OrganizationId.eq(organization_id))
        .filter(user::Column::Role.eq("admin"))
        .all(db)
        .await
}
