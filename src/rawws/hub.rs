//! The plain WebSocket side of delivery: which connections are in which rooms, and a bounded
//! send queue per connection. A connection whose queue is full is a slow consumer: it is
//! dropped (told why) instead of letting its backlog grow in the server's memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::publish::Publication;
use crate::rooms::Room;

/// Which contract a connection speaks; deliveries are framed accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/ws` (venue channels): `{type, channel?, data, id, offset?}`.
    Channels,
    /// `/api/ws` (commerce): `{type, data}`.
    Commerce,
}

/// Why the hub ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    SlowConsumer,
}

pub type ConnId = String;

struct Conn {
    dialect: Dialect,
    queue: mpsc::Sender<Arc<str>>,
    kick: watch::Sender<Option<Kick>>,
    rooms: HashSet<String>,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, HashSet<ConnId>>,
}

/// What a new connection gets from the hub.
pub struct Registration {
    pub id: ConnId,
    pub frames: mpsc::Receiver<Arc<str>>,
    pub kicked: watch::Receiver<Option<Kick>>,
}

#[derive(Default)]
pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
}

/// Per-room offsets a publication was recorded at, for the `offset` field of `/ws` frames.
pub type Offsets<'a> = &'a [(String, i64)];

impl Hub {
    pub fn register(&self, dialect: Dialect, queue_len: usize) -> Registration {
        let id = format!("ws-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (queue, frames) = mpsc::channel(queue_len);
        let (kick, kicked) = watch::channel(None);
        let conn = Conn {
            dialect,
            queue,
            kick,
            rooms: HashSet::new(),
        };
        self.registry.write().unwrap().conns.insert(id.clone(), conn);
        // A connection is addressable by its id, like a socket.
        self.join(&id, &id);
        Registration { id, frames, kicked }
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
        }
        remove_member(&mut reg.rooms, room, id);
    }

    /// Takes every connection in `from` out of `room` (a membership was removed).
    pub fn leave_all(&self, from: &str, room: &str) {
        let ids: Vec<ConnId> = {
            let reg = self.registry.read().unwrap();
            reg.rooms.get(from).map(|s| s.iter().cloned().collect()).unwrap_or_default()
        };
        for id in ids {
            self.leave(&id, room);
        }
    }

    pub fn rooms_of(&self, id: &str) -> usize {
        self.registry.read().unwrap().conns.get(id).map_or(0, |c| c.rooms.len())
    }

    /// Connections in `room`.
    pub fn members(&self, room: &str) -> usize {
        self.registry.read().unwrap().rooms.get(room).map_or(0, HashSet::len)
    }

    pub fn connections(&self) -> usize {
        self.registry.read().unwrap().conns.len()
    }

    /// Queues a frame for one connection (replies to its own messages).
    pub fn send_to(&self, id: &str, frame: Arc<str>) {
        let reg = self.registry.read().unwrap();
        if let Some(conn) = reg.conns.get(id) {
            enqueue(conn, frame);
        }
    }

    /// Delivers a publication to every connection in its audience, once each. Each frame is
    /// serialized once per dialect, not once per connection.
    pub fn deliver(&self, publication: &Publication, offsets: Offsets<'_>) -> usize {
        let reg = self.registry.read().unwrap();
        let audience = &publication.audience;
        let excluded: HashSet<&str> = audience
            .except
            .iter()
            .filter_map(|r| reg.rooms.get(&r.name()))
            .flatten()
            .map(String::as_str)
            .collect();
        let mut targets: HashSet<&str> = HashSet::new();
        if audience.everyone {
            targets.extend(reg.conns.keys().map(String::as_str));
        } else {
            for room in &audience.rooms {
                if let Some(members) = reg.rooms.get(&room.name()) {
                    targets.extend(members.iter().map(String::as_str));
                }
            }
        }
        let mut frames = Frames::new(publication, offsets);
        let mut delivered = 0;
        for id in targets.difference(&excluded) {
            if let Some(conn) = reg.conns.get(*id) {
                enqueue(conn, frames.get(conn.dialect));
                delivered += 1;
            }
        }
        delivered
    }
}

fn enqueue(conn: &Conn, frame: Arc<str>) {
    if let Err(mpsc::error::TrySendError::Full(_)) = conn.queue.try_send(frame) {
        // Told once; the connection task closes itself and unregisters.
        conn.kick.send_if_modified(|k| k.replace(Kick::SlowConsumer).is_none());
    }
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
pub fn frame(dialect: Dialect, event: &str, data: &Value, id: &str, channel: Option<&str>, offset: Option<i64>) -> Arc<str> {
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
    offsets: Offsets<'a>,
    channels: Option<Arc<str>>,
    commerce: Option<Arc<str>>,
}

impl<'a> Frames<'a> {
    fn new(publication: &'a Publication, offsets: Offsets<'a>) -> Self {
        Frames {
            publication,
            offsets,
            channels: None,
            commerce: None,
        }
    }

    fn get(&mut self, dialect: Dialect) -> Arc<str> {
        let slot = match dialect {
            Dialect::Channels => &mut self.channels,
            Dialect::Commerce => &mut self.commerce,
        };
        if let Some(frame) = slot {
            return frame.clone();
        }
        let p = self.publication;
        let channel = p.audience.rooms.iter().find_map(|r| match r {
            Room::Named(name) => Some(name.as_str()),
            _ => None,
        });
        let offset = channel.and_then(|c| self.offsets.iter().find(|(room, _)| room == c).map(|(_, o)| *o));
        let built = frame(dialect, p.event.as_str(), &p.data, &p.id.to_string(), channel, offset);
        *slot = Some(built.clone());
        built
    }
}
