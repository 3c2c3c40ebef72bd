//! Catching up on history over plain WebSocket: `{type: "subscribe", channel, since}`, and
//! `?since=` for the home rooms at connect. `since` is an offset (entries after it) or an RFC
//! 3339 time. The connection's live deliveries are held back from before it joins the rooms
//! until the history is sent; held ones the history already gave are dropped. So the client
//! gets the history in order, then live, with no gap and nothing twice at the seam.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use entity::history;

use super::outgoing::{connections, reply};
use super::refusal::Refusal;
use crate::history::Since;
use crate::hub::plain::{self, Dialect};
use crate::rooms::Room;
use crate::state::AppState;

/// How long to wait for history rows already numbered but not yet committed (they were
/// delivered before the connection joined, so only the history can give them).
const COMMIT_WAIT: Duration = Duration::from_secs(2);
/// Rows read per query.
const PAGE: u64 = 500;

/// Reads a `since` value: a number (an offset) or a string (an offset or an RFC 3339 time).
pub fn parse_since(value: &Value) -> Option<Since> {
    match value {
        Value::Number(n) => n.as_i64().filter(|o| *o >= 0).map(Since::Offset),
        Value::String(s) => Since::parse(s),
        _ => None,
    }
}

/// Sends connection `id` the history of `rooms` after `since`, oldest first, each publication
/// once, then releases its held deliveries. The caller has held the connection and joined the
/// rooms. Returns how many publications were sent.
pub async fn replay(
    state: &AppState,
    id: &str,
    dialect: Dialect,
    rooms: &[Room],
    since: Since,
) -> Result<usize, String> {
    let mut covered = Vec::with_capacity(rooms.len());
    let mut rows = Vec::new();
    for room in rooms {
        let (through, run) = read_run(state, room, since).await?;
        covered.push((room.name(), through));
        rows.extend(run.into_iter().map(|row| (room.clone(), row)));
    }
    // A publication to several of the rooms is sent once, in publication order.
    rows.sort_by(|(_, a), (_, b)| (a.published_at, &a.publication_id).cmp(&(b.published_at, &b.publication_id)));
    let mut sent = HashSet::new();
    let connections = state.hub.plain();
    // What the connection's filters exclude is not replayed either.
    let filters: Vec<_> = rooms.iter().map(|room| connections.filter_of(id, &room.name())).collect();
    for (room, row) in rows {
        let data: Value = serde_json::from_str(&row.data).unwrap_or(Value::Null);
        let filter = rooms.iter().position(|r| *r == room).and_then(|i| filters[i].as_ref());
        if filter.is_some_and(|f| !f.matches(&row.event, &data)) || !sent.insert(row.publication_id.clone()) {
            continue;
        }
        let channel = match &room {
            Room::Named(name) => Some(name.as_str()),
            _ => None,
        };
        let offset = channel.map(|_| row.offset);
        let frame = plain::frame(dialect, &row.event, &data, &row.publication_id, channel, offset);
        connections.send_waiting(id, frame).await;
    }
    connections.release(id, &covered);
    Ok(sent.len())
}

/// The rows of `room` after `since` that form an unbroken run of offsets, and the offset the
/// run ends at. Offsets increase by one per room, so the run, waited for until it reaches the
/// last offset handed out when the connection had joined, holds every publication the
/// connection could have missed; later ones reach it live (held until the release). A row
/// committed out of order after a gap is left to the live path.
async fn read_run(state: &AppState, room: &Room, since: Since) -> Result<(i64, Vec<history::Model>), String> {
    let history = &state.history;
    let name = room.name();
    let target = state.publisher.last_offset(room).await;
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    loop {
        let mut rows = Vec::new();
        let mut after = since;
        loop {
            let page = history.read(&name, after, PAGE).await.map_err(|e| e.to_string())?;
            let full = page.len() as u64 == PAGE;
            if let Some(last) = page.last() {
                after = Since::Offset(last.offset);
            }
            rows.extend(page);
            if !full {
                break;
            }
        }
        let start = match since {
            Since::Offset(offset) => offset,
            Since::Time(_) => rows.first().map_or(target, |r| r.offset - 1),
        };
        let mut end = start;
        let run: Vec<history::Model> = rows
            .into_iter()
            .take_while(|r| {
                let next = r.offset == end + 1;
                end += i64::from(next);
                next
            })
            .collect();
        if end >= target || tokio::time::Instant::now() >= deadline {
            if end < target {
                tracing::warn!(room = %name, through = end, target, "history replay: some rows never reached the database");
            }
            return Ok((end, run));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replays history (see [`replay`]); if it cannot be read, says so and delivers live.
pub(super) async fn catch_up_or_release(state: &AppState, id: &str, dialect: Dialect, rooms: &[Room], since: Since) {
    if let Err(e) = replay(state, id, dialect, rooms, since).await {
        tracing::warn!(conn = %id, error = %e, "history replay failed");
        connections(state).release(id, &[]);
        reply(
            state,
            id,
            Refusal::new("history_unavailable", "the history could not be read; live delivery continues").frame(),
        );
    }
}
