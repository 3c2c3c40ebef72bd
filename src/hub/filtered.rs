//! Filtered delivery (SPEC H5) to Socket.IO sockets: a socket that narrows a room it is in
//! ([`Filter`]) joins that filter's group, a bookkeeping room shared by every socket with the
//! same filter on that room, and the room's marker room (every filtered socket of the room).
//!
//! A publication to rooms without filters is delivered as before. Otherwise, in three
//! broadcasts at most: the sockets of the audience in no marker room of it, as before; the
//! groups whose filter passes the publication (each filter evaluated once, one broadcast for
//! them all, encoded once); and, for a publication to several rooms, the filtered sockets that
//! are in another of its rooms without a filter there (asked one by one: the rare case). A
//! publication to everyone is not a room's: filters do not narrow it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use socketioxide::extract::SocketRef;

use super::Hub;
use super::socket_filters::SocketFilters;
use crate::filters::Filter;
use crate::publication::{Audience, Publication};
use crate::rooms::Room;

/// The filter groups of this instance's rooms: by room, by filter key, the filter and how many
/// sockets hold it.
#[derive(Default)]
pub(super) struct Groups(Mutex<HashMap<String, RoomGroups>>);

/// One room's groups: by filter key, the filter and how many sockets hold it.
type RoomGroups = HashMap<String, (Arc<Filter>, usize)>;

/// The room every filtered socket of `room` is in.
fn marker(room: &str) -> String {
    Room::filtered(room).name()
}

/// The room of the sockets whose filter on `room` has this key.
fn group(room: &str, key: &str) -> String {
    Room::filter_group(room, key).name()
}

/// How one publication meets the filters of its rooms: the marker rooms of those rooms, and the
/// rooms of the groups whose filter passes it.
pub(super) struct Plan {
    pub markers: Vec<String>,
    pub passing: Vec<String>,
}

impl Hub {
    /// Sets (or, with `None`, removes) a socket's filter on `room`, which it is in.
    pub fn set_filter(&self, socket: &SocketRef, room: &str, filter: Option<Filter>) {
        self.filter_and_join(socket, room, filter, false);
    }

    /// Puts a socket in `room` with its filter there (or none), in one step: no publication
    /// reaches it in the room unfiltered, nor through its group before it is in the room.
    pub fn join_filtered(&self, socket: &SocketRef, room: &str, filter: Option<Filter>) {
        self.filter_and_join(socket, room, filter, true);
    }

    fn filter_and_join(&self, socket: &SocketRef, room: &str, filter: Option<Filter>, joining: bool) {
        let filters = socket.extensions.get::<SocketFilters>().unwrap_or_default();
        let old = {
            let mut mine = filters.lock();
            let old = mine.remove(room);
            if let Some(filter) = &filter {
                mine.insert(room.to_owned(), Arc::new(filter.clone()));
            }
            old
        };
        socket.extensions.insert(filters);
        if let Some(old) = old {
            socket.leave([group(room, &old.key())]);
            self.groups.release(room, &old.key());
        }
        let joined = joining.then(|| room.to_owned());
        match filter {
            Some(filter) => {
                let key = filter.key();
                self.groups.hold(room, &key, filter);
                socket.join(
                    [Some(group(room, &key)), Some(marker(room)), joined].into_iter().flatten().collect::<Vec<_>>(),
                );
            }
            None => {
                socket.leave([marker(room)]);
                if let Some(room) = joined {
                    socket.join(room);
                }
            }
        }
    }

    /// Drops a socket's filters on `rooms` (it left them), or on every room (`None`: it is gone).
    pub fn drop_filters(&self, socket: &SocketRef, rooms: Option<&[String]>) {
        let Some(filters) = socket.extensions.get::<SocketFilters>() else { return };
        let held: Vec<String> = filters.lock().keys().cloned().collect();
        for room in held.into_iter().filter(|r| rooms.is_none_or(|rooms| rooms.contains(r))) {
            self.set_filter(socket, &room, None);
        }
    }

    /// Whether some room here has a filter.
    pub(super) fn has_filters(&self) -> bool {
        !self.groups.0.lock().unwrap().is_empty()
    }

    /// Whether a socket's filters let a publication of its audience through: one of the
    /// audience's rooms it is in has no filter of its, or one that passes.
    pub fn passes(socket: &SocketRef, publication: &Publication) -> bool {
        let Some(filters) = socket.extensions.get::<SocketFilters>() else { return true };
        let mine = filters.lock();
        if mine.is_empty() || publication.audience.everyone {
            return true;
        }
        let rooms = socket.rooms();
        publication.audience.rooms.iter().map(Room::name).any(|room| {
            rooms.iter().any(|r| *r == room)
                && mine.get(&room).is_none_or(|f| f.matches(publication.event.as_str(), publication.json()))
        })
    }

    /// [`Hub::passes`] for a publication whose plan is made: by the socket's rooms alone (its
    /// group's filter was evaluated once for the plan).
    pub(super) fn passes_planned(socket: &SocketRef, publication: &Publication, plan: &Plan) -> bool {
        let rooms = socket.rooms();
        let is_in = |name: &str| rooms.iter().any(|r| r == name);
        plan.passing.iter().any(|group| is_in(group))
            || publication.audience.rooms.iter().map(Room::name).any(|room| is_in(&room) && !is_in(&marker(&room)))
    }

    /// The plan of a publication whose audience has filtered rooms; `None` for the others
    /// (delivered as if filters did not exist).
    pub(super) fn filter_plan(&self, publication: &Publication) -> Option<Plan> {
        let audience: &Audience = &publication.audience;
        if audience.everyone {
            return None;
        }
        let groups = self.groups.0.lock().unwrap();
        if groups.is_empty() {
            return None;
        }
        let mut plan = Plan { markers: Vec::new(), passing: Vec::new() };
        for room in audience.rooms.iter().map(Room::name) {
            let Some(filters) = groups.get(&room) else { continue };
            for (key, (filter, _)) in filters {
                if filter.matches(publication.event.as_str(), publication.json()) {
                    plan.passing.push(group(&room, key));
                }
            }
            plan.markers.push(marker(&room));
        }
        (!plan.markers.is_empty()).then_some(plan)
    }
}

impl Groups {
    fn hold(&self, room: &str, key: &str, filter: Filter) {
        let mut groups = self.0.lock().unwrap();
        let entry = groups.entry(room.to_owned()).or_default().entry(key.to_owned()).or_insert((Arc::new(filter), 0));
        entry.1 += 1;
    }

    fn release(&self, room: &str, key: &str) {
        let mut groups = self.0.lock().unwrap();
        let Some(filters) = groups.get_mut(room) else { return };
        if let Some(entry) = filters.get_mut(key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                filters.remove(key);
            }
        }
        if filters.is_empty() {
            groups.remove(room);
        }
    }
}
