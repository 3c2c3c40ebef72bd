//! Bridges from Redis into the publish path.
//!
//! - [`redis_json`]: the JSON channels backends publish to: `invitation-updates`,
//!   `notifications`, and `switchyard:publish` (a publish request as `POST /api/events` takes).
//!
//! [`RedisLink`] records whether Redis answers, for the status and readiness endpoints.

pub mod redis_json;

use std::sync::atomic::{AtomicBool, Ordering};

/// The state of this instance's Redis connection.
#[derive(Debug, Default)]
pub struct RedisLink {
    configured: bool,
    connected: AtomicBool,
}

impl RedisLink {
    pub fn new(configured: bool) -> Self {
        RedisLink {
            configured,
            connected: AtomicBool::new(false),
        }
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// `disabled` (no Redis configured), `connected` or `disconnected`.
    pub fn status(&self) -> &'static str {
        match (self.configured, self.connected.load(Ordering::Relaxed)) {
            (false, _) => "disabled",
            (true, true) => "connected",
            (true, false) => "disconnected",
        }
    }
}
