//! Lossless reconnects for Socket.IO clients that opt in (handshake `auth.offset`).
//!
//! Every recorded publication gets a [`Position`] in the recovery log: a Redis stream id when
//! the cluster bus numbers it (the same Lua step that publishes it), or this instance's own
//! counter on a single instance ([`memory`]). The log keeps what was published for the
//! recovery window. An opted-in socket has a session (its id, its user, the rooms it joined)
//! and a [`Tracker`] that ends each delivery with its [`Cursor`] (`{session}:{position}`). A
//! client that reconnects with its last cursor gets its session's rooms back, then every logged
//! publication after that position for those rooms, in order, then `recovery`, then live
//! deliveries: the tracker holds live deliveries back while the replay runs and drops those the
//! replay already gave, so nothing arrives twice or out of order at the seam.
//!
//! Sessions live where every instance can read them (the cluster bus, or this instance's memory
//! without Redis): a client can resume on any instance while its session is within the window.

mod cursor;
pub mod memory;
mod tracker;

pub use self::cursor::{Cursor, Position, Session, new_session_id, session_instance};
pub use self::tracker::{Overflow, Tracker};

use std::time::Duration;

use crate::cluster::Bus;
use crate::publication::Publication;
use crate::rooms::Room;

use self::memory::MemoryStore;

/// Where logs and sessions are kept.
pub struct Recovery {
    window: Duration,
    store: Store,
}

enum Store {
    Memory(MemoryStore),
    Cluster(Bus),
}

impl Recovery {
    /// A single instance: the log and sessions in memory.
    pub fn local(window: Duration) -> Self {
        Recovery { window, store: Store::Memory(MemoryStore::new(window)) }
    }

    /// A cluster: the log and sessions in Redis, through the bus.
    pub fn clustered(bus: Bus, window: Duration) -> Self {
        Recovery { window, store: Store::Cluster(bus) }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// On a single instance: logs a publication and hands its position to `deliver` while the
    /// log is held, so that tracked sockets see positions in order. `None` in a cluster (the
    /// bus positions publications) and while no session exists (nothing to resume).
    pub fn log_locally<R>(&self, publication: &Publication, deliver: impl FnOnce(Position) -> R) -> Option<R> {
        match &self.store {
            Store::Memory(memory) => memory.append(publication, deliver),
            Store::Cluster(_) => None,
        }
    }

    /// The last position logged.
    pub async fn tail(&self) -> Result<Position, String> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.tail()),
            Store::Cluster(bus) => {
                let tail = bus.log_tail().await.map_err(|e| e.to_string())?;
                Position::parse(&tail).ok_or_else(|| format!("log position `{tail}` does not parse"))
            }
        }
    }

    /// Every logged publication after `after`, oldest first; `None` when the log no longer
    /// covers everything after it.
    pub async fn since(&self, after: Position) -> Result<Option<Vec<(Position, Publication)>>, String> {
        match &self.store {
            Store::Memory(memory) => Ok(memory.since(after)),
            Store::Cluster(bus) => {
                let entries = bus.log_since(&after.to_string()).await.map_err(|e| e.to_string())?;
                let mut read = Vec::with_capacity(entries.len());
                for (id, body) in entries {
                    let position = Position::parse(&id).ok_or_else(|| format!("log position `{id}` does not parse"))?;
                    read.push((position, crate::cluster::deliver::decode_body(&body)?));
                }
                Ok(Some(read))
            }
        }
    }

    /// Records a connected session (kept while its instance lives, and the window after).
    pub async fn save(&self, id: &str, session: &Session) {
        let result = match &self.store {
            Store::Memory(memory) => {
                memory.save(id, session.clone(), None);
                Ok(())
            }
            Store::Cluster(bus) => bus.save_session(id, &to_json(session)).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "recovery: session not saved");
        }
    }

    /// Records a session whose socket closed: resumable for the window.
    pub async fn release(&self, id: &str, session: &Session) {
        let result = match &self.store {
            Store::Memory(memory) => {
                memory.save(id, session.clone(), Some(self.window));
                Ok(())
            }
            Store::Cluster(bus) => bus.release_session(id, &to_json(session), self.window).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "recovery: session not released");
        }
    }

    /// Takes a session for resumption: it can be resumed once.
    pub async fn take(&self, id: &str) -> Option<Session> {
        match &self.store {
            Store::Memory(memory) => memory.take(id),
            Store::Cluster(bus) => match bus.take_session(id, session_instance(id)).await {
                Ok(found) => found.and_then(|json| serde_json::from_str(&json).ok()),
                Err(e) => {
                    tracing::warn!(error = %e, "recovery: session could not be read");
                    None
                }
            },
        }
    }
}

fn to_json(session: &Session) -> String {
    serde_json::to_string(session).expect("serializable")
}

/// Whether a publication is for a socket in `rooms`.
pub fn addressed_to(publication: &Publication, rooms: &[String]) -> bool {
    let audience = &publication.audience;
    let within = |list: &[Room]| list.iter().any(|r| rooms.contains(&r.name()));
    (audience.everyone || within(&audience.rooms)) && !within(&audience.except)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_positions_read_back_and_garbage_is_no_cursor() {
        let cursor = Cursor { session: new_session_id("0123456789ab"), position: Position::new(1700000000000, 3) };
        assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor.clone()));
        assert_eq!(session_instance(&cursor.session), "0123456789ab");
        assert!(Position::new(5, 0) > Position::new(4, 9));
        for garbage in ["", "x", "abc:1-2", "0123456789ab0123456789ab:1", "0123456789ab0123456789zz:1-2"] {
            assert_eq!(Cursor::parse(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn only_joined_rooms_are_restored() {
        let rooms = ["user:u", "org:o", "tenant:t", "tenant:t:project:p", "venue:1", "abc", "switchyard#recovering"];
        let kept = Session::restorable(rooms.iter().map(|r| r.to_string()), "abc");
        assert_eq!(kept, ["tenant:t:project:p", "venue:1"]);
    }
}
