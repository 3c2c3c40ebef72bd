//! A socket's filters (SPEC H5), by room, kept in its extensions: what [`super::filtered`]
//! delivers by, and what its session keeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::filters::Filter;

/// A socket's filters, by room.
#[derive(Clone, Default)]
pub struct SocketFilters(Arc<Mutex<BTreeMap<String, Arc<Filter>>>>);

impl SocketFilters {
    pub(super) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Filter>>> {
        self.0.lock().unwrap()
    }
}

/// A socket's filters as its session keeps them (as clients send them).
pub fn saved(socket: &SocketRef) -> BTreeMap<String, Value> {
    let Some(filters) = socket.extensions.get::<SocketFilters>() else { return BTreeMap::new() };
    let mine = filters.lock();
    mine.iter().map(|(room, filter)| (room.clone(), filter.to_json())).collect()
}
