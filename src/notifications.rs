//! User and organization notifications (`notification:new`): from `POST /api/websocket`
//! `{action: "notify"}`, the Redis channel `notifications` and the jobs.

use serde_json::Value;

use crate::publish::{Audience, EventName, Publication, PublishError, Receipt, Source};
use crate::rooms::{Room, RoomError};
use crate::state::AppState;

pub const EVENT: &str = "notification:new";

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
        let id = |key: &str| match notification.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        id("userId")
            .map(Recipient::User)
            .or_else(|| id("organizationId").map(Recipient::Organization))
    }
}

/// Publishes `notification:new` with `data` to the recipient's room.
pub async fn notify(
    state: &AppState,
    recipient: &Recipient,
    data: Value,
    source: Source,
) -> Result<Receipt, PublishError> {
    let room = recipient.room()?;
    let event = EventName::parse(EVENT).expect("valid event name");
    state
        .publisher
        .publish(Publication::new(event, Audience::rooms(vec![room]), data, source))
        .await
}
