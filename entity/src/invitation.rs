//! A vendor invitation and its lifecycle (`pending`, `accepted`, `revoked`, `expired`).
//! Watchers of `invitation:{id}` are told of every change.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "invitations")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Only members of this organization may watch the invitation.
    pub organization_id: Option<String>,
    pub email: Option<String>,
    pub status: String,
    pub expires_at: Option<DateTimeUtc>,
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
