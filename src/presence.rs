//! Presence: how many connections (Socket.IO and plain WebSocket alike) each user has on this
//! instance, so that `user:status` is announced when the first opens and when the last closes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use crate::auth::Identity;
use crate::publish::{Audience, EventName, Publication, Source};
use crate::rooms::Room;
use crate::state::AppState;

pub const EVENT: &str = "user:status";

/// `user:status` to the user's tenant and organization, not to the user's own connections.
/// Callers count with [`Presence::connected`] / [`Presence::disconnected`] first, synchronously,
/// so that a connection that closes at once is never counted out before it was counted in.
pub async fn announce(state: &AppState, identity: &Identity, status: &str) {
    let rooms: Vec<Room> = [
        identity.organization_id.as_deref().and_then(|o| Room::org(o).ok()),
        identity.tenant_id.as_deref().and_then(|t| Room::tenant(t).ok()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if rooms.is_empty() {
        return;
    }
    let audience = Audience {
        everyone: false,
        rooms,
        except: vec![Room::User(identity.user_id.clone())],
    };
    let data = json!({"userId": identity.user_id, "status": status});
    let event = EventName::parse(EVENT).expect("valid event name");
    if let Err(e) = state
        .publisher
        .publish(Publication::ephemeral(event, audience, data, Source::Presence))
        .await
    {
        tracing::warn!(error = %e, "presence announcement not recorded");
    }
}

#[derive(Debug, Default)]
pub struct Presence {
    connections: Mutex<HashMap<String, usize>>,
}

impl Presence {
    /// Counts a new connection; true when it is the user's first.
    pub fn connected(&self, user_id: &str) -> bool {
        let mut map = self.connections.lock().unwrap();
        let count = map.entry(user_id.to_owned()).or_default();
        *count += 1;
        *count == 1
    }

    /// Counts a closed connection; true when it was the user's last.
    pub fn disconnected(&self, user_id: &str) -> bool {
        let mut map = self.connections.lock().unwrap();
        match map.get_mut(user_id) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                map.remove(user_id);
                true
            }
            None => false,
        }
    }

    /// Open connections of a user on this instance.
    pub fn connections(&self, user_id: &str) -> usize {
        self.connections.lock().unwrap().get(user_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_connections_are_reported() {
        let p = Presence::default();
        assert!(p.connected("u"));
        assert!(!p.connected("u"));
        assert!(!p.disconnected("u"));
        assert!(p.disconnected("u"));
        assert!(!p.disconnected("u"), "an unknown user is not reported twice");
        assert_eq!(p.connections("u"), 0);
    }
}
