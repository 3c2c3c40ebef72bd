//! One publication as recorded in one room's history, at that room's next offset.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "history")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room: String,
    /// Strictly increasing within the room, from 1.
    #[sea_orm(primary_key, auto_increment = false)]
    pub offset: i64,
    /// The publication id (one publication may be in several rooms' histories).
    pub publication_id: String,
    pub event: String,
    /// The payload as JSON text, exactly as delivered.
    pub data: String,
    pub published_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
