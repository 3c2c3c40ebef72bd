//! Presence: whether a user has any connection (Socket.IO or plain WebSocket) on any instance,
//! so that `user:status` is announced once when his first connection opens and once when his
//! last closes, cluster-wide, and also when the instance holding his last connection dies.
//!
//! Each instance counts its own connections per user in memory ([`Presence::count_in`] /
//! [`Presence::count_out`], synchronous, so a connection that closes at once is never counted
//! out before it was counted in). [`Presence::sync`] then publishes this instance's count, under
//! a per-user lock, and reports a transition when the cluster-wide total went from zero to some
//! or from some to zero. The totals live in the broker ([`crate::broker`]: Redis, or this
//! instance's memory); [`Presence::maintain`] keeps this instance's heartbeat and reaps dead
//! instances. This module decides what to announce; the caller publishes it ([`announcement`]).
//!
//! A user's announcements are held to one per `PRESENCE_ANNOUNCE_INTERVAL`
//! ([`Presence::open_window`]): one user opening and closing connections 155 times a second
//! fanned `user:status` out to his whole organization each time. The first change is announced
//! at once; changes within the window are held, and its end announces the last one if it differs
//! from what was announced, so the organization always ends up with the user's true status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::broker::{Broker, Orphan};
use crate::event::EventName;
use crate::publication::{Audience, Publication, Source};
use crate::rooms::Room;

/// A change of a user's cluster-wide presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Online,
    Offline,
}

impl Transition {
    fn status(self) -> &'static str {
        match self {
            Transition::Online => "online",
            Transition::Offline => "offline",
        }
    }
}

/// `user:status` for a transition, to the user's status rooms and not to his own connections;
/// `None` when he has no status rooms.
pub fn announcement(user: &str, rooms: Vec<Room>, transition: Transition) -> Option<Publication> {
    if rooms.is_empty() {
        return None;
    }
    let audience = Audience::except(rooms, vec![Room::User(user.to_owned())]);
    let data = json!({"userId": user, "status": transition.status()});
    Some(Publication::ephemeral(EventName::USER_STATUS, audience, data, Source::Presence))
}

pub struct Presence {
    /// Open connections per user on this instance.
    local: Mutex<HashMap<String, usize>>,
    /// The status rooms each locally connected user was last synced with (to sync again after
    /// this instance was reaped).
    rooms: Mutex<HashMap<String, Vec<Room>>>,
    /// Serializes the syncs of one user.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Where the totals are kept.
    broker: Arc<dyn Broker>,
    /// Users whose last announcement is less than `announce_interval` old.
    windows: Mutex<HashMap<String, Window>>,
    /// `PRESENCE_ANNOUNCE_INTERVAL` (zero: every change announced).
    announce_interval: Duration,
}

/// A user's announcement window.
struct Window {
    /// What the organization was last told.
    announced: Transition,
    /// The last change held since, with the rooms to tell.
    held: Option<(Transition, Vec<Room>)>,
}

impl Presence {
    /// Presence across the instances sharing `broker` (this one alone in memory).
    pub fn new(broker: Arc<dyn Broker>, announce_interval: Duration) -> Self {
        Presence {
            local: Mutex::default(),
            rooms: Mutex::default(),
            locks: Mutex::default(),
            broker,
            windows: Mutex::default(),
            announce_interval,
        }
    }

    /// How long a user's announcement window lasts.
    pub fn announce_interval(&self) -> Duration {
        self.announce_interval
    }

    /// Offers a change of `user`'s status for announcement: true when it is to be announced now
    /// (a window opens: the caller announces it, then calls [`Presence::close_window`] once the
    /// interval has passed); false when a window is open already and holds it instead.
    pub fn open_window(&self, user: &str, transition: Transition, rooms: Vec<Room>) -> bool {
        if self.announce_interval.is_zero() {
            return true;
        }
        let mut windows = self.windows.lock().unwrap();
        match windows.get_mut(user) {
            Some(window) => {
                window.held = Some((transition, rooms));
                false
            }
            None => {
                windows.insert(user.to_owned(), Window { announced: transition, held: None });
                true
            }
        }
    }

    /// Ends `user`'s window: the change it held when that differs from what was announced (a
    /// new window opens for it: the caller announces it and closes that one in turn), or
    /// `None` (the window is gone).
    pub fn close_window(&self, user: &str) -> Option<(Transition, Vec<Room>)> {
        let mut windows = self.windows.lock().unwrap();
        let window = windows.get_mut(user)?;
        match window.held.take() {
            Some((transition, rooms)) if transition != window.announced => {
                window.announced = transition;
                Some((transition, rooms))
            }
            _ => {
                windows.remove(user);
                None
            }
        }
    }

    pub fn count_in(&self, user: &str) {
        *self.local.lock().unwrap().entry(user.to_owned()).or_default() += 1;
    }

    pub fn count_out(&self, user: &str) {
        let mut local = self.local.lock().unwrap();
        if let Some(count) = local.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                local.remove(user);
            }
        }
    }

    /// Open connections of a user on this instance.
    pub fn connections(&self, user: &str) -> usize {
        self.local.lock().unwrap().get(user).copied().unwrap_or(0)
    }

    /// Publishes this instance's count of `user` (whose status goes to `rooms`) and returns the
    /// cluster-wide transition, if any.
    pub async fn sync(&self, user: &str, rooms: &[Room]) -> Option<Transition> {
        let lock = self.locks.lock().unwrap().entry(user.to_owned()).or_default().clone();
        let _guard = lock.lock().await;
        let count = self.connections(user);
        {
            let mut known = self.rooms.lock().unwrap();
            if count > 0 {
                known.insert(user.to_owned(), rooms.to_vec());
            } else {
                known.remove(user);
            }
        }
        let (before, after) = match self.broker.sync_presence(user, count, rooms).await {
            Ok(totals) => totals,
            Err(e) => {
                tracing::warn!(error = %e, user, "presence: Redis unreachable; status not announced");
                return None;
            }
        };
        if count == 0 {
            self.release_lock(user, &lock);
        }
        match (before, after) {
            (0, n) if n > 0 => Some(Transition::Online),
            (n, 0) if n > 0 => Some(Transition::Offline),
            _ => None,
        }
    }

    /// Forgets a user's lock once he has no connection here and no other sync holds it (a
    /// lock per user ever seen grew without bound: 30,000 churned users in the soak).
    fn release_lock(&self, user: &str, lock: &Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap();
        // This sync's clone and the map's: no one else is waiting on it.
        if Arc::strong_count(lock) == 2 && self.connections(user) == 0 {
            locks.remove(user);
        }
    }

    /// The user's connections on every instance (this one's as counted now; the others' as they
    /// last synced).
    pub async fn connections_anywhere(&self, user: &str) -> usize {
        self.connections(user) + self.broker.connections_elsewhere(user).await.unwrap_or(0)
    }

    /// Whether the user has a connection anywhere in the cluster.
    pub async fn is_online(&self, user: &str) -> bool {
        self.connections(user) > 0 || self.broker.connections_elsewhere(user).await.unwrap_or(0) > 0
    }

    /// How often [`Presence::maintain`] should run; `None` on a single instance.
    pub fn maintenance_interval(&self) -> Option<Duration> {
        self.broker.heartbeat_interval()
    }

    /// One round of cluster upkeep: this instance's heartbeat, then the users of dead instances
    /// (offline) and, if this instance had itself been reaped, its own users (online again).
    /// Returns what to announce.
    pub async fn maintain(&self, first: bool) -> Vec<Publication> {
        let mut announce = Vec::new();
        match self.broker.heartbeat().await {
            Ok(registered) if registered && !first => {
                tracing::warn!("presence: this instance was taken for dead; syncing its users again");
                let users: Vec<(String, Vec<Room>)> =
                    self.rooms.lock().unwrap().iter().map(|(u, r)| (u.clone(), r.clone())).collect();
                for (user, rooms) in users {
                    if let Some(transition) = self.sync(&user, &rooms).await {
                        announce.extend(announcement(&user, rooms, transition));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "presence: heartbeat failed"),
        }
        match self.broker.reap_dead().await {
            Ok(orphans) => announce.extend(offline(orphans)),
            Err(e) => tracing::warn!(error = %e, "presence: reaping failed"),
        }
        announce
    }

    /// At shutdown: takes this instance out of the cluster's presence, so that its users are
    /// announced offline at once rather than when its heartbeat expires.
    pub async fn leave(&self) -> Vec<Publication> {
        match self.broker.leave().await {
            Ok(orphans) => offline(orphans),
            Err(e) => {
                tracing::warn!(error = %e, "presence: could not clear this instance at shutdown");
                Vec::new()
            }
        }
    }
}

fn offline(orphans: Vec<Orphan>) -> Vec<Publication> {
    orphans.into_iter().filter_map(|o| announcement(&o.user, o.rooms, Transition::Offline)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_instance_reports_the_first_and_the_last_connection_once() {
        let p = Presence::new(crate::broker::MemoryBroker::for_tests().await, Duration::ZERO);
        p.count_in("u");
        assert_eq!(p.sync("u", &[]).await, Some(Transition::Online));
        p.count_in("u");
        assert_eq!(p.sync("u", &[]).await, None);
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, None);
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, Some(Transition::Offline));
        assert_eq!(p.sync("u", &[]).await, None, "reported once");
        assert_eq!(p.connections("u"), 0);
        assert!(p.locks.lock().unwrap().is_empty(), "nothing kept for a user who is gone");
    }

    #[tokio::test]
    async fn a_connection_that_closes_before_its_sync_reports_nothing() {
        let p = Presence::new(crate::broker::MemoryBroker::for_tests().await, Duration::ZERO);
        p.count_in("u");
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, None);
        assert_eq!(p.sync("u", &[]).await, None);
    }

    #[tokio::test]
    async fn changes_within_a_window_are_held_and_its_end_tells_the_last_one_if_it_differs() {
        let p = Presence::new(crate::broker::MemoryBroker::for_tests().await, Duration::from_secs(1));
        assert!(p.open_window("u", Transition::Online, vec![]));
        assert!(!p.open_window("u", Transition::Offline, vec![]));
        assert!(!p.open_window("u", Transition::Online, vec![]));
        assert_eq!(p.close_window("u"), None, "back where it was announced: nothing to tell");
        assert!(p.open_window("u", Transition::Online, vec![]), "the window is gone");
        assert!(!p.open_window("u", Transition::Offline, vec![Room::Org("o".into())]));
        assert_eq!(p.close_window("u"), Some((Transition::Offline, vec![Room::Org("o".into())])));
        assert!(!p.open_window("u", Transition::Online, vec![]), "the held change opened a window of its own");
        assert_eq!(p.close_window("u").map(|(t, _)| t), Some(Transition::Online));
        assert_eq!(p.close_window("u"), None);
        assert!(p.windows.lock().unwrap().is_empty());
    }

    #[test]
    fn a_status_goes_to_the_status_rooms_but_not_to_the_user_himself() {
        let p = announcement("u", vec![Room::Org("o".into())], Transition::Online).unwrap();
        assert_eq!(p.audience.room_names(), ["org:o"]);
        assert_eq!(p.audience.except_names(), ["user:u"]);
        assert_eq!(p.json(), &json!({"userId": "u", "status": "online"}));
        assert!(announcement("u", vec![], Transition::Offline).is_none());
    }
}
