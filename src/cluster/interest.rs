//! Interest-based delivery: an instance reads the channel of a room only while it has a member
//! in it, so that Redis sends each publication to the instances that deliver it, not to all.
//!
//! A room is *wanted* before a connection enters it ([`Bus::want`] returns once Redis confirmed
//! the subscription), so that nothing published after the join passes this instance by; a
//! subscriber that reconnects subscribes every wanted room before it counts as connected.
//! Rooms left empty are forgotten lazily: every [`SWEEP_EVERY`] the rooms with no member here
//! and not wanted since the sweep before are unsubscribed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::connection::Listener;
use super::keys::Stream;
use super::{Bus, Handler};

/// How often rooms left empty are unsubscribed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(15);

#[derive(Default)]
pub(super) struct Interest {
    /// Rooms subscribed (or to subscribe at the next connection), with the sweep during which
    /// they were last wanted.
    rooms: Mutex<HashMap<String, u64>>,
    sweep: AtomicU64,
    /// One subscribing at a time, so that a room counts as read only once Redis confirmed it,
    /// and a reconnection does not miss a room wanted meanwhile.
    subscribing: tokio::sync::Mutex<()>,
    /// The current subscriber's command side; `None` between connections.
    listener: Mutex<Option<Listener>>,
}

impl Bus {
    /// Makes sure this instance reads the channels of `rooms`, before a connection enters them.
    /// Fails when Redis does not confirm (the rooms stay wanted: the next connection subscribes
    /// them).
    pub async fn want(&self, rooms: &[String]) -> redis::RedisResult<()> {
        let interest = &self.inner.interest;
        let sweep = interest.sweep.load(Ordering::Relaxed);
        if stamp(&mut interest.rooms.lock().unwrap(), rooms, sweep) {
            return Ok(());
        }
        let _one = interest.subscribing.lock().await;
        let missing: Vec<String> = {
            let known = interest.rooms.lock().unwrap();
            let mut missing: Vec<String> = rooms.iter().filter(|r| !known.contains_key(*r)).cloned().collect();
            missing.sort();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        let listener = interest.listener.lock().unwrap().clone();
        let subscribed = match listener {
            Some(mut listener) => listener.subscribe_bus(&self.room_channels(&missing)).await,
            None => Ok(()),
        };
        interest.rooms.lock().unwrap().extend(missing.into_iter().map(|room| (room, sweep)));
        subscribed
    }

    /// Subscribes a new subscriber to every wanted room, then lets [`Bus::want`] use it.
    pub(super) async fn subscribe_wanted(&self, mut listener: Listener) -> redis::RedisResult<()> {
        let interest = &self.inner.interest;
        let _one = interest.subscribing.lock().await;
        let rooms: Vec<String> = interest.rooms.lock().unwrap().keys().cloned().collect();
        for chunk in rooms.chunks(1_000) {
            listener.subscribe_bus(&self.room_channels(chunk)).await?;
        }
        *interest.listener.lock().unwrap() = Some(listener);
        Ok(())
    }

    /// The subscriber's connection ended.
    pub(super) fn listener_gone(&self) {
        *self.inner.interest.listener.lock().unwrap() = None;
    }

    /// Every [`SWEEP_EVERY`], unsubscribes the rooms with no member here (as `handler` says)
    /// and not wanted since the sweep before; for as long as the subscriber runs.
    pub(super) async fn forget_empty_rooms<H: Handler>(&self, handler: &H) {
        let interest = &self.inner.interest;
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let _one = interest.subscribing.lock().await;
            let sweep = interest.sweep.fetch_add(1, Ordering::Relaxed) + 1;
            let here = handler.rooms_here().await;
            let gone = forget(&mut interest.rooms.lock().unwrap(), &here, sweep);
            let listener = interest.listener.lock().unwrap().clone();
            if let (Some(mut listener), false) = (listener, gone.is_empty())
                && let Err(e) = listener.unsubscribe_bus(&self.room_channels(&gone)).await
            {
                tracing::debug!(error = %e, "redis: empty rooms not unsubscribed (the connection will be new)");
            }
        }
    }

    /// Whether this instance reads `room`'s channel (or will, at its next connection).
    pub(super) fn reads(&self, room: &str) -> bool {
        self.inner.interest.rooms.lock().unwrap().contains_key(room)
    }

    /// How many rooms' channels this instance reads.
    pub fn rooms_read(&self) -> usize {
        self.inner.interest.rooms.lock().unwrap().len()
    }

    fn room_channels(&self, rooms: &[String]) -> Vec<String> {
        rooms.iter().map(|room| self.inner.keys.deliver_channel(Stream::Room(room))).collect()
    }
}

/// Marks `rooms` as wanted in `sweep`; true when every one of them was known already.
fn stamp(known: &mut HashMap<String, u64>, rooms: &[String], sweep: u64) -> bool {
    let mut all = true;
    for room in rooms {
        match known.get_mut(room) {
            Some(wanted) => *wanted = sweep,
            None => all = false,
        }
    }
    all
}

/// Removes from `known` the rooms with no member `here` and not wanted during this `sweep` or
/// the one before (a room wanted just before the sweep began may be about to be entered);
/// returns them.
fn forget(known: &mut HashMap<String, u64>, here: &HashSet<String>, sweep: u64) -> Vec<String> {
    let mut gone = Vec::new();
    known.retain(|room, wanted| {
        let keep = here.contains(room) || *wanted + 1 >= sweep;
        if !keep {
            gone.push(room.clone());
        }
        keep
    });
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_forgotten_once_empty_and_unwanted_for_a_whole_sweep() {
        let mut known = HashMap::new();
        let rooms = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(!stamp(&mut known, &rooms(&["a"]), 0), "a new room is not known yet");
        known.extend(rooms(&["a", "b", "c"]).into_iter().map(|r| (r, 0)));
        assert!(stamp(&mut known, &rooms(&["c"]), 1), "known rooms are stamped");
        let here: HashSet<String> = rooms(&["b"]).into_iter().collect();
        assert!(forget(&mut known, &here, 1).is_empty(), "wanted in the sweep before: kept");
        assert_eq!(forget(&mut known, &here, 2), ["a"], "a: empty, last wanted two sweeps ago");
        assert_eq!(forget(&mut known, &here, 3), ["c"]);
        assert!(known.contains_key("b"), "b has a member here");
    }
}
