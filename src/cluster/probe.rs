//! An end-to-end check of the bus. Every [`PROBE_EVERY`] this instance publishes a probe on its
//! own reply channel through its commands connection, and its subscriber reads it back. A
//! subscriber that looks connected while nothing reaches it (a master that became a replica, a
//! half-open connection, a proxy in between) or commands that fail show as probes that stop
//! coming back: after [`PROBE_PATIENCE`] the bus counts as not delivering (`/readyz` 503,
//! `switchyard_redis_errors_total{kind="probe"}` counted once a probe late).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Bus, Handler};
use crate::metrics::RedisFailure;

/// How often a probe is sent.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long the bus may go without a probe coming back before it counts as not delivering.
pub const PROBE_PATIENCE: Duration = Duration::from_secs(5);
/// What a probe says (a count answer is JSON and never this).
pub(super) const PROBE: &[u8] = b"probe";

/// When a probe last came back (or the subscriber connected, which counts as one).
pub(super) struct Probes {
    last_back: Mutex<Instant>,
}

impl Default for Probes {
    fn default() -> Self {
        Probes { last_back: Mutex::new(Instant::now()) }
    }
}

impl Bus {
    /// Sends a probe every [`PROBE_EVERY`], for as long as the subscriber runs.
    pub(super) async fn probe_periodically<H: Handler>(&self, handler: &H) {
        let mut late = false;
        for round in 0u64.. {
            tokio::time::sleep(PROBE_EVERY).await;
            if round % 5 == 0
                && let Err(e) = self.watch_older_instances().await
            {
                tracing::debug!(error = %e, "redis: could not count the bus's readers");
            }
            let sent = redis::cmd(self.inner.keys.publish_command())
                .arg(self.inner.keys.reply_channel())
                .arg(PROBE)
                .query_async::<()>(&mut self.connection())
                .await;
            match sent {
                Ok(()) => self.end_generation_if_alone(handler).await,
                Err(e) => tracing::debug!(error = %e, "redis: probe not sent"),
            }
            let now_late = !self.is_delivering() && self.is_connected();
            if now_late && !late {
                tracing::warn!(patience = ?PROBE_PATIENCE, "redis: probes stopped coming back; the bus is not delivering");
                self.count_failure(RedisFailure::Probe);
            }
            late = now_late;
        }
    }

    /// A probe came back, or the subscriber (re)connected.
    pub(super) fn probe_returned(&self) {
        *self.inner.probes.last_back.lock().unwrap() = Instant::now();
    }

    /// Whether the bus delivers end to end: its subscriber is connected and a probe came back
    /// within [`PROBE_PATIENCE`].
    pub fn is_delivering(&self) -> bool {
        self.is_connected() && self.inner.probes.last_back.lock().unwrap().elapsed() < PROBE_PATIENCE
    }
}
