//! A `notification:new` kept for one user: delivered when he connects if he was offline when
//! it was published, and listed by `GET /api/notifications` until read.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "notifications")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// Sequence across all users; `since` in the polling API compares against it.
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub user_id: String,
    /// The notification's own `id` when its payload has one, else the publication id.
    pub notification_id: String,
    pub data: String,
    pub created_at: DateTimeUtc,
    /// Set when it reached at least one of the user's connections.
    pub delivered_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
