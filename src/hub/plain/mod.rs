//! The plain WebSocket connections of this instance: which connections are in which rooms, and a
//! bounded send queue per connection. A connection whose queue is full is a slow consumer: it is
//! dropped (told why) instead of letting its backlog grow in the server's memory. Each
//! publication is framed once per dialect, not once per connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};

mod filtering;

use super::outbox::Outbox;
pub use super::outbox::{Frame, Kick};

use crate::publication::{Audience, Publication, RoomAction};
use crate::rooms::Room;

/// Which contract a connection speaks; deliveries are framed accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/ws` (venue channels): `{type, channel?, data, id, offset?}`.
    Channels,
    /// `/api/ws` (commerce): `{type, data}`.
    Commerce,
}

pub type ConnId = String;

struct Conn {
    dialect: Dialect,
    outbox: Arc<Outbox>,
    rooms: HashSet<String>,
    /// Deliveries held back while the connection catches up on a room's history.
    held: Mutex<Option<Vec<Held>>>,
    /// Per room it caught up on, the offset the history gave it through: a delivery at or
    /// below it reached this instance after the history was read, and is not sent again.
    caught_up: Mutex<Vec<(String, i64)>>,
    /// Its filters (SPEC H5), by room.
    filters: filtering::ConnFilters,
}

/// A delivery held back: its frame, and its history offsets by room (to drop the ones the
/// history already gave).
struct Held {
    offsets: Vec<(String, i64)>,
    frame: Frame,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, HashSet<ConnId>>,
}

/// What a new connection gets from the hub.
pub struct Registration {
    pub id: ConnId,
    pub outbox: Arc<Outbox>,
}

#[derive(Default)]
pub struct PlainConnections {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
}

impl PlainConnections {
    pub fn register(&self, dialect: Dialect, queue_len: usize) -> Registration {
        let id = format!("ws-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(queue_len));
        let conn = Conn {
            dialect,
            outbox: outbox.clone(),
            rooms: HashSet::new(),
            held: Mutex::new(None),
            caught_up: Mutex::default(),
            filters: filtering::ConnFilters::default(),
        };
        // A connection is addressable by its id, like a socket: its id is a room the registry
        // answers from `conns` (see `Registry::room`), without a member set of one.
        self.registry.write().unwrap().conns.insert(id.clone(), conn);
        Registration { id, outbox }
    }

    pub fn unregister(&self, id: &str) {
        let mut reg = self.registry.write().unwrap();
        if let Some(conn) = reg.conns.remove(id) {
            for room in conn.rooms {
                remove_member(&mut reg.rooms, &room, id);
            }
        }
    }

    pub fn join(&self, id: &str, room: &str) {
        let mut reg = self.registry.write().unwrap();
        let Some(conn) = reg.conns.get_mut(id) else { return };
        conn.rooms.insert(room.to_owned());
        reg.rooms.entry(room.to_owned()).or_default().insert(id.to_owned());
    }

    pub fn leave(&self, id: &str, room: &str) {
        let mut reg = self.registry.write().unwrap();
        if let Some(conn) = reg.conns.get_mut(id) {
            conn.rooms.remove(room);
            conn.filters.remove(room);
        }
        remove_member(&mut reg.rooms, room, id);
    }

    /// Holds the connection's deliveries back (while it catches up on history) until
    /// [`PlainConnections::release`].
    pub fn hold(&self, id: &str) {
        if let Some(conn) = self.registry.read().unwrap().conns.get(id) {
            conn.held.lock().unwrap().get_or_insert_with(Vec::new);
        }
    }

    /// Sends what was held, but the deliveries the history already gave (`covered`: per room,
    /// the offset through which it was replayed), and delivers live again.
    pub fn release(&self, id: &str, covered: &[(String, i64)]) {
        let reg = self.registry.read().unwrap();
        let Some(conn) = reg.conns.get(id) else { return };
        let mut held = conn.held.lock().unwrap();
        let mut caught_up = conn.caught_up.lock().unwrap();
        for (room, through) in covered {
            caught_up.retain(|(r, _)| r != room);
            caught_up.push((room.clone(), *through));
        }
        for item in held.take().unwrap_or_default() {
            if !already_given(&caught_up, &item.offsets) {
                conn.outbox.push(item.frame);
            }
        }
    }

    /// Whether some connection is in `target`.
    pub fn has_audience(&self, target: &Audience) -> bool {
        !self.registry.read().unwrap().audience(target).is_empty()
    }

    /// Applies a room operation to the connections of its audience.
    pub fn apply(&self, target: &Audience, action: &RoomAction) {
        let ids: Vec<ConnId> = {
            let reg = self.registry.read().unwrap();
            reg.audience(target).into_iter().map(str::to_owned).collect()
        };
        for id in ids {
            match action {
                RoomAction::Join(rooms) => rooms.iter().for_each(|room| self.join(&id, room)),
                RoomAction::Leave(rooms) => rooms.iter().for_each(|room| self.leave(&id, room)),
                RoomAction::Disconnect => self.kick(&id, Kick::Disconnected),
                RoomAction::Revoke => self.kick(&id, Kick::Revoked),
            }
        }
    }

    /// Ends a connection (it closes itself, telling the client why).
    pub fn kick(&self, id: &str, why: Kick) {
        if let Some(conn) = self.registry.read().unwrap().conns.get(id) {
            conn.outbox.end(why);
        }
    }

    /// The rooms a connection is in.
    pub fn rooms_of(&self, id: &str) -> Vec<String> {
        let reg = self.registry.read().unwrap();
        reg.conns.get(id).map(|c| c.rooms.iter().cloned().collect()).unwrap_or_default()
    }

    /// The rooms with a connection in them.
    pub fn rooms(&self) -> Vec<String> {
        let reg = self.registry.read().unwrap();
        reg.rooms.iter().filter(|(_, members)| !members.is_empty()).map(|(room, _)| room.clone()).collect()
    }

    /// Connections in `room`.
    pub fn members(&self, room: &str) -> usize {
        self.registry.read().unwrap().room(room).count()
    }

    pub fn connections(&self) -> usize {
        self.registry.read().unwrap().conns.len()
    }

    /// Every connection's id.
    pub fn ids(&self) -> Vec<ConnId> {
        self.registry.read().unwrap().conns.keys().cloned().collect()
    }

    /// Queues a frame for one connection, waiting while its queue is full (a history replay:
    /// a long one must not count as a slow consumer).
    pub async fn send_waiting(&self, id: &str, frame: Frame) {
        let outbox = self.registry.read().unwrap().conns.get(id).map(|c| c.outbox.clone());
        if let Some(outbox) = outbox {
            outbox.push_waiting(frame).await;
        }
    }

    /// Queues a frame for one connection (replies to its own messages).
    pub fn send_to(&self, id: &str, frame: Frame) {
        let reg = self.registry.read().unwrap();
        if let Some(conn) = reg.conns.get(id) {
            conn.outbox.push(frame);
        }
    }

    /// Delivers a publication to every connection in its audience, once each; nothing when its
    /// payload has no JSON form.
    pub fn deliver(&self, publication: &Publication, offsets: &[(String, i64)]) -> usize {
        let Some(data) = publication.data.json() else { return 0 };
        let reg = self.registry.read().unwrap();
        let mut frames = Frames::new(publication, data, offsets);
        let mut delivered = 0;
        // Each filter is evaluated once per publication, whoever holds it.
        let mut verdicts = HashMap::new();
        for id in reg.audience(&publication.audience) {
            if let Some(conn) = reg.conns.get(id) {
                if !conn.filters.is_empty() && !conn.passes(id, publication, &mut verdicts) {
                    continue;
                }
                let caught_up = conn.caught_up.lock().unwrap();
                if !caught_up.is_empty() && already_given(&caught_up, offsets) {
                    continue;
                }
                drop(caught_up);
                let frame = frames.get(conn.dialect);
                let mut held = conn.held.lock().unwrap();
                match held.as_mut() {
                    Some(held) => held.push(Held { offsets: offsets.to_vec(), frame }),
                    None => {
                        conn.outbox.push(frame);
                    }
                }
                delivered += 1;
            }
        }
        delivered
    }
}

impl Registry {
    /// The connections in `room`: its members, or the connection whose id it is.
    fn room<'a>(&'a self, room: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let members = self.rooms.get(room).into_iter().flatten();
        let itself = self.conns.get_key_value(room).map(|(id, _)| id);
        members.chain(itself).map(String::as_str)
    }

    /// The connections an audience names, once each.
    fn audience(&self, audience: &Audience) -> HashSet<&str> {
        let members = |rooms: &[Room]| -> HashSet<&str> { rooms.iter().flat_map(|r| self.room(&r.name())).collect() };
        let mut targets =
            if audience.everyone { self.conns.keys().map(String::as_str).collect() } else { members(&audience.rooms) };
        if !audience.except.is_empty() {
            let excluded = members(&audience.except);
            targets.retain(|id| !excluded.contains(id));
        }
        targets
    }
}

/// Whether a delivery with these offsets is one the history already gave (offsets reach a
/// connection in order per room, so one at or below the caught-up offset was given).
fn already_given(caught_up: &[(String, i64)], offsets: &[(String, i64)]) -> bool {
    offsets.iter().any(|(room, offset)| caught_up.iter().any(|(r, through)| r == room && offset <= through))
}

fn remove_member(rooms: &mut HashMap<String, HashSet<ConnId>>, room: &str, id: &str) {
    if let Some(members) = rooms.get_mut(room) {
        members.remove(id);
        if members.is_empty() {
            rooms.remove(room);
        }
    }
}

/// One delivery as `dialect` frames it. `id` and `offset` appear in `/ws` frames only.
pub fn frame(
    dialect: Dialect,
    event: &str,
    data: &Value,
    id: &str,
    channel: Option<&str>,
    offset: Option<i64>,
) -> Frame {
    let frame = match dialect {
        Dialect::Commerce => json!({"type": event, "data": data}),
        Dialect::Channels => {
            let mut frame = json!({"type": event, "data": data, "id": id});
            if let Some(channel) = channel {
                frame["channel"] = Value::from(channel);
            }
            if let Some(offset) = offset {
                frame["offset"] = Value::from(offset);
            }
            frame
        }
    };
    frame.to_string().into()
}

/// The frames of one publication, built on first use per dialect.
struct Frames<'a> {
    publication: &'a Publication,
    data: &'a Value,
    /// The public channel the publication went to, and its offset there.
    channel: Option<&'a str>,
    offset: Option<i64>,
    channels: Option<Frame>,
    commerce: Option<Frame>,
}

impl<'a> Frames<'a> {
    fn new(publication: &'a Publication, data: &'a Value, offsets: &'a [(String, i64)]) -> Self {
        let channel = publication.audience.rooms.iter().find_map(|r| match r {
            Room::Named(name) => Some(name.as_str()),
            _ => None,
        });
        let offset = channel.and_then(|c| offsets.iter().find(|(room, _)| room == c).map(|(_, o)| *o));
        Frames { publication, data, channel, offset, channels: None, commerce: None }
    }

    fn get(&mut self, dialect: Dialect) -> Frame {
        let slot = match dialect {
            Dialect::Channels => &mut self.channels,
            Dialect::Commerce => &mut self.commerce,
        };
        if let Some(frame) = slot {
            return frame.clone();
        }
        let p = self.publication;
        let built = frame(dialect, p.event.as_str(), self.data, &p.id.to_string(), self.channel, self.offset);
        *slot = Some(built.clone());
        built
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::EventName;
    use crate::publication::{Audience, Source};

    fn publication(audience: Audience) -> Publication {
        Publication::new(EventName::NOTIFICATION_NEW, audience, json!({"n": 1}), Source::Http)
    }

    #[test]
    fn a_connection_is_a_room_of_its_own_without_a_member_set() {
        let hub = PlainConnections::default();
        let one = hub.register(Dialect::Channels, 8);
        let other = hub.register(Dialect::Channels, 8);
        hub.join(&other.id, "user:u2");
        assert_eq!(hub.members(&one.id), 1);
        assert!(hub.rooms_of(&one.id).is_empty(), "its own room is not a subscription");

        let to_one = publication(Audience::rooms(vec![Room::connection(&one.id)]));
        assert_eq!(hub.deliver(&to_one, &[]), 1);
        assert_eq!(one.outbox.take().len(), 1);
        assert!(other.outbox.take().is_empty());

        let all_but_one =
            Audience::except(vec![Room::User("u2".into()), Room::connection(&one.id)], vec![Room::connection(&one.id)]);
        assert_eq!(hub.deliver(&publication(all_but_one), &[]), 1);
        assert!(one.outbox.take().is_empty());
        assert_eq!(other.outbox.take().len(), 1);

        hub.unregister(&one.id);
        assert_eq!(hub.members(&one.id), 0);
    }
}
