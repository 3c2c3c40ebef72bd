//! User and organization notifications (`notification:new`): from `POST /api/websocket`
//! `{action: "notify"}`, the Redis channel `notifications` and the jobs; and the inbox replay a
//! user's new connection gets, whichever protocol it speaks.

use sea_orm::DatabaseConnection;
use serde_json::Value;

use crate::event::EventName;
use crate::id::LooseId;
use crate::publication::{Audience, Publication, Source};
use crate::publish::{PublishError, Publisher, Receipt, inbox};
use crate::rooms::{Room, RoomError};

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    User(String),
    Organization(String),
}

impl Recipient {
    pub fn room(&self) -> Result<Room, RoomError> {
        match self {
            Recipient::User(id) => Room::user(id),
            Recipient::Organization(id) => Room::org(id),
        }
    }

    /// The recipient a notification object names: `userId`, else `organizationId`.
    pub fn of(notification: &Value) -> Option<Recipient> {
        let id = |key: &str| notification.get(key).and_then(LooseId::non_empty);
        id("userId").map(Recipient::User).or_else(|| id("organizationId").map(Recipient::Organization))
    }
}

/// Publishes `notification:new` with `data` to the recipient's room.
pub async fn notify(
    publisher: &Publisher,
    recipient: &Recipient,
    data: Value,
    source: Source,
) -> Result<Receipt, PublishError> {
    let room = recipient.room()?;
    let publication = Publication::new(EventName::NOTIFICATION_NEW, Audience::rooms(vec![room]), data, source);
    publisher.publish(publication).await
}

/// Claims the user's notifications that reached none of his connections, oldest first, as
/// `(id, data)`: each is handed to exactly one new connection. A database failure is logged
/// and yields none (the connection still opens).
pub async fn undelivered(db: &DatabaseConnection, user_id: &str) -> Vec<(String, Value)> {
    match inbox::claim_undelivered(db, user_id, chrono::Utc::now()).await {
        Ok(rows) => rows
            .into_iter()
            .map(|row| (row.notification_id, serde_json::from_str(&row.data).unwrap_or(Value::Null)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "undelivered notifications could not be read");
            Vec::new()
        }
    }
}
