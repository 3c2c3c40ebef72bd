//! The recovery log and sessions of a single instance (no Redis), in memory: positions are
//! `{start}-{n}`, `start` this process's start time in milliseconds, so a cursor from an
//! earlier run of the process never matches. Entries older than the window (and a margin) are
//! dropped, and at most [`MAX_ENTRIES`] are kept; a cursor older than an entry dropped for room
//! is no longer covered.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::publication::Publication;
use crate::recovery::{Position, Session, Taken};

/// Entries kept at most, whatever the window.
const MAX_ENTRIES: usize = 100_000;
/// Kept past the window: a publication in flight when a client dropped is still there when it
/// resumes at the window's end.
const MARGIN: Duration = Duration::from_secs(30);

pub struct MemoryLog {
    window: Duration,
    start: u64,
    log: Mutex<Log>,
    /// Sessions by id, with when they expire (`None` while connected).
    sessions: Mutex<HashMap<String, (Session, Option<Instant>)>>,
}

#[derive(Default)]
struct Log {
    next: u64,
    entries: VecDeque<(Position, Instant, Publication)>,
    /// The newest position dropped for room (not for age): cursors before it are not covered.
    dropped_for_room: Option<Position>,
}

impl MemoryLog {
    pub fn new(window: Duration) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        MemoryLog { window, start, log: Mutex::default(), sessions: Mutex::default() }
    }

    /// Logs a publication, then calls `deliver` with its position while the log is held.
    /// `None` (nothing logged) while no session exists: no client opted in, and none can
    /// resume, so keeping the window's publications would only hold memory.
    pub fn append<R>(&self, publication: &Publication, deliver: impl FnOnce(Position) -> R) -> Option<R> {
        if self.sessions.lock().unwrap().is_empty() {
            return None;
        }
        let mut log = self.log.lock().unwrap();
        log.next += 1;
        let position = Position::new(self.start, log.next);
        let now = Instant::now();
        while let Some((_, at, _)) = log.entries.front() {
            if now.duration_since(*at) <= self.window + MARGIN && log.entries.len() < MAX_ENTRIES {
                break;
            }
            let aged = now.duration_since(*at) > self.window + MARGIN;
            let (dropped, _, _) = log.entries.pop_front().expect("front exists");
            if !aged {
                log.dropped_for_room = Some(dropped);
            }
        }
        log.entries.push_back((position, now, publication.clone()));
        Some(deliver(position))
    }

    pub fn tail(&self) -> Position {
        let log = self.log.lock().unwrap();
        if log.next == 0 { Position::ZERO } else { Position::new(self.start, log.next) }
    }

    /// Entries after `after`; `None` when some were dropped for room after it, or it is from
    /// another run of this process.
    pub fn since(&self, after: Position) -> Option<Vec<(Position, Publication)>> {
        let log = self.log.lock().unwrap();
        if after != Position::ZERO
            && (after < Position::new(self.start, 0) || after > Position::new(self.start, log.next))
        {
            return None;
        }
        if log.dropped_for_room.is_some_and(|dropped| after < dropped) {
            return None;
        }
        Some(
            log.entries
                .iter()
                .filter(|(p, _, _)| *p > after)
                .map(|(p, _, publication)| (*p, publication.clone()))
                .collect(),
        )
    }

    pub fn save(&self, id: &str, session: Session, expires_in: Option<Duration>) {
        let mut sessions = self.sessions.lock().unwrap();
        let now = Instant::now();
        sessions.retain(|_, (_, expiry)| expiry.is_none_or(|e| e > now));
        sessions.insert(id.to_owned(), (session, expires_in.map(|d| now + d)));
    }

    /// Takes `user`'s session `id`; another user's is left where it is (see [`Taken`]).
    pub fn take(&self, id: &str, user: &str) -> Taken {
        let mut sessions = self.sessions.lock().unwrap();
        match sessions.get(id) {
            None => Taken::Missing,
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                sessions.remove(id);
                Taken::Missing
            }
            Some((session, _)) if session.user != user => Taken::OtherUsers,
            Some(_) => Taken::Session(sessions.remove(id).expect("present under the lock").0),
        }
    }
}
