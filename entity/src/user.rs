//! A user as the backends describe him: the claims a token carries, kept so that
//! `AUTH_REQUIRE_USER` can refuse tokens of users who do not exist or are unverified.

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "users")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// The JWT `sub` of this user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub organization_id: Option<String>,
    pub tenant_id: Option<String>,
    pub role: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
