//! The notification inbox: every `notification:new` addressed to a user is kept, marked
//! delivered when it reached one of his connections, and read when he says so. A user who was
//! offline gets the undelivered ones when he connects.

use chrono::{DateTime, Utc};
use entity::notification;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::Value;

use crate::id::LooseId;

/// The notification's own id (`data.id`) when it has one, else the publication id.
pub fn notification_id(data: &Value, publication_id: &str) -> String {
    data.get("id").and_then(LooseId::non_empty).unwrap_or_else(|| publication_id.to_owned())
}

/// Keeps one notification for each user; `delivered` says whether it reached him live.
pub async fn keep(
    db: &DatabaseConnection,
    users: &[(String, bool)],
    notification_id: &str,
    data: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if users.is_empty() {
        return Ok(());
    }
    let rows = users.iter().map(|(user, delivered)| notification::ActiveModel {
        user_id: Set(user.clone()),
        notification_id: Set(notification_id.to_owned()),
        data: Set(data.to_owned()),
        created_at: Set(now),
        delivered_at: Set(delivered.then_some(now)),
        read_at: Set(None),
        ..Default::default()
    });
    notification::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Claims the user's undelivered notifications, oldest first: each is returned to exactly one
/// caller, even when several connections open at once.
pub async fn claim_undelivered(
    db: &DatabaseConnection,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<notification::Model>, DbErr> {
    let pending = notification::Entity::find()
        .filter(notification::Column::UserId.eq(user_id))
        .filter(notification::Column::DeliveredAt.is_null())
        .order_by_asc(notification::Column::Seq)
        .limit(100)
        .all(db)
        .await?;
    let mut claimed = Vec::with_capacity(pending.len());
    for row in pending {
        let result = notification::Entity::update_many()
            .col_expr(notification::Column::DeliveredAt, sea_orm::sea_query::Expr::value(now))
            .filter(notification::Column::Seq.eq(row.seq))
            .filter(notification::Column::DeliveredAt.is_null())
            .exec(db)
            .await?;
        if result.rows_affected == 1 {
            claimed.push(row);
        }
    }
    Ok(claimed)
}

/// Marks one of the user's notifications read; false when he has none unread with that id.
pub async fn mark_read(
    db: &DatabaseConnection,
    user_id: &str,
    notification_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, sea_orm::sea_query::Expr::value(now))
        .filter(notification::Column::UserId.eq(user_id))
        .filter(notification::Column::NotificationId.eq(notification_id))
        .filter(notification::Column::ReadAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The user's notifications after sequence `since_seq` or time `since_time`, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    user_id: &str,
    since: crate::history::Since,
    unread_only: bool,
    limit: u64,
) -> Result<Vec<notification::Model>, DbErr> {
    let mut query = notification::Entity::find().filter(notification::Column::UserId.eq(user_id));
    query = match since {
        crate::history::Since::Offset(seq) => query.filter(notification::Column::Seq.gt(seq)),
        crate::history::Since::Time(t) => query.filter(notification::Column::CreatedAt.gt(t)),
    };
    if unread_only {
        query = query.filter(notification::Column::ReadAt.is_null());
    }
    query.order_by_asc(notification::Column::Seq).limit(limit).all(db).await
}
