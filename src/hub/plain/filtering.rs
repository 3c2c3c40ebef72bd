//! Filters (SPEC H5) on plain WebSocket connections: a connection narrows a room it is in; a
//! publication reaches it when one of the publication's rooms it is in has no filter of its, or
//! one that passes. Each distinct filter is evaluated once per publication.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Conn, PlainConnections};
use crate::filters::Filter;
use crate::publication::Publication;
use crate::rooms::Room;

impl PlainConnections {
    /// Sets (`None`: removes) a connection's filter on `room`; false when it is not in it.
    pub fn set_filter(&self, id: &str, room: &str, filter: Option<Filter>) -> bool {
        let mut reg = self.registry.write().unwrap();
        let Some(conn) = reg.conns.get_mut(id) else { return false };
        if !conn.rooms.contains(room) {
            return false;
        }
        conn.filters.set(room, filter);
        true
    }

    /// Puts a connection in `room` with its filter there (or none), under one lock: no
    /// publication reaches it in the room unfiltered.
    pub fn join_filtered(&self, id: &str, room: &str, filter: Option<Filter>) {
        let mut reg = self.registry.write().unwrap();
        let Some(conn) = reg.conns.get_mut(id) else { return };
        conn.rooms.insert(room.to_owned());
        conn.filters.set(room, filter);
        reg.rooms.entry(room.to_owned()).or_default().insert(id.to_owned());
    }

    /// A connection's filter on `room`, for a catch-up on its history.
    pub fn filter_of(&self, id: &str, room: &str) -> Option<Arc<Filter>> {
        let reg = self.registry.read().unwrap();
        reg.conns.get(id)?.filters.get(room).map(|(_, filter)| filter.clone())
    }
}

/// A connection's filters, by room: each filter's key and the filter. Boxed and allocated at the
/// first filter: most connections never set one, and an empty map inline cost each idle
/// connection 48 bytes.
#[derive(Default)]
#[allow(clippy::box_collection)] // The point: 8 bytes inline where an empty map takes 48.
pub(super) struct ConnFilters(Option<Box<HashMap<String, Keyed>>>);

/// A filter with its key (the same filter held by several connections has one key).
type Keyed = (String, Arc<Filter>);

impl ConnFilters {
    /// Sets (or, with `None`, removes) the filter on `room`.
    pub(super) fn set(&mut self, room: &str, filter: Option<Filter>) {
        match filter {
            Some(filter) => {
                self.0.get_or_insert_default().insert(room.to_owned(), (filter.key(), Arc::new(filter)));
            }
            None => self.remove(room),
        }
    }

    pub(super) fn remove(&mut self, room: &str) {
        if let Some(filters) = &mut self.0 {
            filters.remove(room);
            if filters.is_empty() {
                self.0 = None;
            }
        }
    }

    pub(super) fn get(&self, room: &str) -> Option<&Keyed> {
        self.0.as_ref()?.get(room)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl Conn {
    /// Whether a publication passes this connection's filters; `verdicts` holds each filter's
    /// answer for this publication, by key.
    pub(super) fn passes(&self, id: &str, publication: &Publication, verdicts: &mut HashMap<String, bool>) -> bool {
        if publication.audience.everyone {
            return true;
        }
        publication.audience.rooms.iter().map(Room::name).any(|room| {
            if !self.rooms.contains(&room) {
                return room == id; // Its own id's room: never filtered.
            }
            let Some((key, filter)) = self.filters.get(&room) else { return true };
            *verdicts
                .entry(key.clone())
                .or_insert_with(|| filter.matches(publication.event.as_str(), publication.json()))
        })
    }
}
