//! The recovery log's generation. Redis replicates asynchronously: a failover can lose the last
//! writes acknowledged by the old master (log entries, sessions), so positions handed out before
//! a change of master may have no entry in the new master's log. The generation is a random id
//! kept beside the log; an instance that moves to a new master starts a new one (unless another
//! instance already did since it last looked), and a session made live in an older generation
//! is resumed with `recovered: false`, never with a silent hole. The instances' tracked sockets
//! are cut when the generation changes, so that each resumes and learns it.
//!
//! An instance that delivered a recorded publication alone while Redis was unreachable (the
//! other instances' clients missed it, and the log does not have it) starts a new generation
//! once its probes come back, and tells every instance on the rooms channel.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Bus, Handler};

/// KEYS: the generation. ARGV: the generation this instance knows (`""` none), a fresh one,
/// whether to start a new one (`1`) if the stored one is still the one this instance knows.
/// Returns the generation now.
const ADOPT: &str = r"
local now = redis.call('GET', KEYS[1])
if (not now) or (ARGV[3] == '1' and now == ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return now
";

pub(super) struct Generation {
    script: redis::Script,
    current: Mutex<String>,
    /// The master changed and the generation could not be settled yet.
    pending: AtomicBool,
    /// A recorded publication was delivered here alone since the generation was last started.
    delivered_alone: AtomicBool,
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            script: redis::Script::new(ADOPT),
            current: Mutex::default(),
            pending: AtomicBool::new(false),
            delivered_alone: AtomicBool::new(false),
        }
    }
}

impl Bus {
    /// The generation of the log this instance numbers in.
    pub fn generation(&self) -> String {
        self.inner.generation.current.lock().unwrap().clone()
    }

    /// Notes that a recorded publication was delivered on this instance alone (Redis was
    /// unreachable): the next generation starts once Redis answers again.
    pub fn delivered_alone(&self) {
        self.inner.generation.delivered_alone.store(true, Ordering::Relaxed);
    }

    /// After a publication delivered alone, with Redis answering again: starts a new generation
    /// (unless another instance did) and tells every instance to settle theirs.
    /// This instance's tracked sockets are cut too: the other instances may have delivered
    /// alone meanwhile, and a change this instance made itself is not announced back to it.
    pub(super) async fn end_generation_if_alone<H: Handler>(&self, handler: &H) {
        if !self.inner.generation.delivered_alone.swap(false, Ordering::Relaxed) {
            return;
        }
        let told = match self.settle_generation(true).await {
            Ok(changed) => {
                if changed {
                    handler.generation_changed();
                }
                self.announce_generation().await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = told {
            tracing::debug!(error = %e, "redis: the new generation is not settled yet");
            self.delivered_alone();
        }
    }

    /// The master changed and its generation is not settled yet.
    pub(super) fn generation_pending(&self) -> bool {
        self.inner.generation.pending.load(Ordering::Relaxed)
    }

    /// Settles the generation (see [`Bus::settle_generation`]) and tells `handler` when it
    /// changed; a Redis that does not answer leaves it for the next try.
    pub(super) async fn settle_generation_for<H: Handler>(&self, handler: &H, moved: bool) {
        if self.settle_generation(moved).await.unwrap_or(false) {
            handler.generation_changed();
        }
    }

    /// Reads the master's generation (starting one if it has none; a new one when `moved` and
    /// no other instance started one since). True when it differs from the one this instance
    /// knew.
    pub(super) async fn settle_generation(&self, moved: bool) -> redis::RedisResult<bool> {
        let state = &self.inner.generation;
        let known = self.generation();
        let moved = moved || state.pending.load(Ordering::Relaxed);
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        let result: redis::RedisResult<String> = state
            .script
            .key(self.inner.keys.generation())
            .arg(&known)
            .arg(&fresh)
            .arg(if moved { "1" } else { "0" })
            .invoke_async(&mut self.connection())
            .await;
        state.pending.store(moved && result.is_err(), Ordering::Relaxed);
        let now = result?;
        *state.current.lock().unwrap() = now.clone();
        if !known.is_empty() && now != known {
            tracing::warn!(from = %known, to = %now, "redis: the recovery log's generation changed");
        }
        Ok(!known.is_empty() && now != known)
    }
}
