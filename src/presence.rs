//! Presence: how many connections each user has on this instance, so that `user:status`
//! is announced when the first opens and when the last closes.

use std::collections::HashMap;
use std::sync::Mutex;

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
