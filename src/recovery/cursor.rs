//! Where a client stands in the recovery log: a [`Position`] in the log, the [`Cursor`] a
//! client holds (`{session}:{position}`), and the [`Session`] kept for its resumption.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rooms::{self, Room};

/// A place in the recovery log: `{ms}-{seq}`, ordered (Redis stream ids have this form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    ms: u64,
    seq: u64,
}

impl Position {
    pub const ZERO: Position = Position { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Self {
        Position { ms, seq }
    }

    pub fn parse(text: &str) -> Option<Position> {
        let (ms, seq) = text.split_once('-')?;
        Some(Position { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What an opted-in client holds and sends back: its session and its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub session: String,
    pub position: Position,
}

impl Cursor {
    /// `{session}:{position}`; `None` for anything else (a client's garbage is no cursor).
    pub fn parse(text: &str) -> Option<Cursor> {
        let (session, position) = text.split_once(':')?;
        if session.len() != SESSION_ID_LEN || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Cursor { session: session.to_owned(), position: Position::parse(position)? })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.session, self.position)
    }
}

/// Session ids: the instance id (12 hex digits, where the session was last connected) and 12
/// random ones.
const SESSION_ID_LEN: usize = 24;

/// A new session id on instance `instance`.
pub fn new_session_id(instance: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{instance}{}", &random[..SESSION_ID_LEN - instance.len()])
}

/// The instance a session was last connected to.
pub fn session_instance(session: &str) -> &str {
    &session[..session.len().min(12)]
}

/// What a session keeps for its resumption: whose it is, the rooms it joined beyond the ones
/// its token gives it, and the generation of the recovery log its socket last went live in (a
/// log of another generation may have lost what it missed; `None` from before generations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// The socket's filters, by room (as clients send them).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub filters: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Session {
    /// The rooms of a socket worth restoring: joined ones (projects, channels, invitations,
    /// public channels, a backend's), not the token's home rooms, not the socket's own.
    pub fn restorable(rooms: impl IntoIterator<Item = String>, own: &str) -> Vec<String> {
        rooms
            .into_iter()
            .filter(|r| r != own && !rooms::is_bookkeeping(r))
            .filter(|r| !matches!(Room::parse(r), Ok(Room::User(_) | Room::Org(_) | Room::Tenant(_))))
            .collect()
    }
}

/// What taking a session for resumption found. Ownership is checked before anything is
/// taken: a cursor presented by another user (leaked, guessed, copied) neither resumes the
/// session nor spends it, and its owner still resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The user's own session, now taken: it can be resumed once.
    Session(Session),
    /// Another user's session: left as it was.
    OtherUsers,
    /// No resumable session by that id (never was, expired, or resumed already).
    Missing,
}
