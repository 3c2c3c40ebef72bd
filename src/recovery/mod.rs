//! Lossless reconnects for Socket.IO clients that opt in (handshake `auth.offset`).
//!
//! Every recorded publication gets a [`Position`] in the recovery log, which the broker keeps
//! ([`crate::broker`]): a Redis stream id when the cluster bus numbers it (the same Lua step
//! that publishes it), or this instance's own counter on a single instance. The log keeps what
//! was published for the recovery window. An opted-in socket has a session (its id, its user,
//! the rooms it joined) and a tracker in the hub ([`crate::hub::Tracker`]) that ends each
//! delivery with its [`Cursor`] (`{session}:{position}`). A
//! client that reconnects with its last cursor gets its session's rooms back, then every logged
//! publication after that position for those rooms, in order, then `recovery`, then live
//! deliveries: the tracker holds live deliveries back while the replay runs and drops those the
//! replay already gave, so nothing arrives twice or out of order at the seam.
//!
//! Sessions live in the broker, where every instance can read them (Redis, or this instance's
//! memory without Redis): a client can resume on any instance while its session is within the
//! window. This module holds what they are made of; it stores nothing.

mod cursor;

pub use self::cursor::{Cursor, Position, Session, Taken, new_session_id, session_instance};

use crate::publication::Publication;
use crate::rooms::Room;

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
