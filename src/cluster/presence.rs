//! Presence in Redis: each user's connection count per instance (one hash per user, a field per
//! instance), instance heartbeats, and reaping the counts of an instance whose heartbeat
//! expired.
//!
//! A user's total is the sum of his fields, whether or not their instance's heartbeat is fresh
//! this very moment: an instance that is merely slow (a loaded machine, a long pause) keeps its
//! users online. Only reaping removes an instance's fields, and reaping is claimed by one
//! instance once the heartbeat has expired. An instance that finds it was reaped while alive
//! (its next heartbeat re-registers it) is told so, and syncs its users again.

use std::collections::HashMap;
use std::time::Duration;

use super::Bus;
use crate::rooms::Room;

/// Sets one instance's count for a user and returns his totals before and after.
/// KEYS: the user's hash, the instance's user set, the user's status rooms.
/// ARGV: instance id, count, user id, status rooms (a JSON list).
const SYNC: &str = r"
local function total()
  local sum = 0
  for _, count in ipairs(redis.call('HVALS', KEYS[1])) do sum = sum + tonumber(count) end
  return sum
end
local before = total()
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[3], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
end
return {before, total()}
";

/// How long one instance's claim on reaping a dead one holds.
const REAP_CLAIM: Duration = Duration::from_secs(60);

pub(super) struct Scripts {
    sync: redis::Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts { sync: redis::Script::new(SYNC) }
    }
}

/// A user whose last connection went with a reaped instance, and where to announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub user: String,
    pub rooms: Vec<Room>,
}

impl Bus {
    /// Sets this instance's count of `user` (whose status goes to `rooms`) and returns his
    /// cluster-wide totals before and after.
    pub async fn sync_presence(&self, user: &str, count: usize, rooms: &[Room]) -> redis::RedisResult<(usize, usize)> {
        self.sync_for(&self.inner.instance, user, count, rooms).await
    }

    async fn sync_for(
        &self,
        instance: &str,
        user: &str,
        count: usize,
        rooms: &[Room],
    ) -> redis::RedisResult<(usize, usize)> {
        let keys = &self.inner.keys;
        let names: Vec<String> = rooms.iter().map(Room::name).collect();
        self.inner
            .presence
            .sync
            .key(keys.presence(user))
            .key(keys.instance_users(instance))
            .key(keys.presence_rooms(user))
            .arg(instance)
            .arg(count)
            .arg(user)
            .arg(serde_json::to_string(&names).expect("serializable"))
            .invoke_async(&mut self.connection())
            .await
    }

    /// `user`'s connections on the other instances not yet reaped.
    pub async fn connections_elsewhere(&self, user: &str) -> redis::RedisResult<usize> {
        let counts: HashMap<String, usize> =
            redis::cmd("HGETALL").arg(self.inner.keys.presence(user)).query_async(&mut self.connection()).await?;
        Ok(counts.iter().filter(|(i, _)| **i != self.inner.instance).map(|(_, c)| c).sum())
    }

    /// Whether `user` has a connection on any instance not yet reaped.
    pub async fn is_online(&self, user: &str) -> redis::RedisResult<bool> {
        let counts: HashMap<String, usize> =
            redis::cmd("HGETALL").arg(self.inner.keys.presence(user)).query_async(&mut self.connection()).await?;
        Ok(counts.values().any(|c| *c > 0))
    }

    /// Refreshes this instance's heartbeat. True when that registered the instance anew: at its
    /// first beat, or after others reaped it for a heartbeat that came too late.
    pub async fn beat(&self) -> redis::RedisResult<bool> {
        let keys = &self.inner.keys;
        let (added,): (usize,) = redis::pipe()
            .cmd("SET")
            .arg(keys.heartbeat(&self.inner.instance))
            .arg(1)
            .arg("PX")
            .arg(self.inner.presence_ttl.as_millis() as u64)
            .ignore()
            .sadd(keys.instances(), &self.inner.instance)
            // This instance's connected sessions stay resumable the window after its last beat.
            .pexpire(keys.sessions(&self.inner.instance), self.sessions_ttl_ms())
            .ignore()
            .query_async(&mut self.connection())
            .await?;
        Ok(added == 1)
    }

    /// How often to beat: three times per heartbeat lifetime.
    pub fn beat_interval(&self) -> Duration {
        self.inner.presence_ttl / 3
    }

    /// Instances with a live heartbeat (at least this one).
    pub async fn live_instances(&self) -> redis::RedisResult<usize> {
        Ok(self.instances_by_liveness().await?.0.len().max(1))
    }

    /// Known instances, split into (live, dead).
    async fn instances_by_liveness(&self) -> redis::RedisResult<(Vec<String>, Vec<String>)> {
        let keys = &self.inner.keys;
        let mut connection = self.connection();
        let known: Vec<String> = redis::cmd("SMEMBERS").arg(keys.instances()).query_async(&mut connection).await?;
        if known.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut exists = redis::pipe();
        for instance in &known {
            exists.exists(keys.heartbeat(instance));
        }
        let alive: Vec<bool> = exists.query_async(&mut connection).await?;
        let (live, dead): (Vec<_>, Vec<_>) = known.into_iter().zip(alive).partition(|(_, alive)| *alive);
        Ok((live.into_iter().map(|(i, _)| i).collect(), dead.into_iter().map(|(i, _)| i).collect()))
    }

    /// Reaps every instance whose heartbeat expired and that this instance claims; returns the
    /// users left with no connection anywhere.
    pub async fn reap_dead(&self) -> redis::RedisResult<Vec<Orphan>> {
        let (_, dead) = self.instances_by_liveness().await?;
        let mut orphans = Vec::new();
        for instance in dead {
            if instance == self.inner.instance || !self.claim(&format!("reap:{instance}"), REAP_CLAIM).await {
                continue;
            }
            tracing::warn!(%instance, "presence: instance stopped sending heartbeats; its users go offline");
            orphans.extend(self.reap(&instance).await?);
        }
        Ok(orphans)
    }

    /// Takes this instance out of presence at shutdown; returns the users that leaves with no
    /// connection anywhere.
    pub async fn leave_presence(&self) -> redis::RedisResult<Vec<Orphan>> {
        redis::cmd("DEL")
            .arg(self.inner.keys.heartbeat(&self.inner.instance))
            .query_async::<()>(&mut self.connection())
            .await?;
        self.reap(&self.inner.instance).await
    }

    /// Removes an instance's counts and registration.
    async fn reap(&self, instance: &str) -> redis::RedisResult<Vec<Orphan>> {
        let keys = &self.inner.keys;
        let mut connection = self.connection();
        let users: Vec<String> =
            redis::cmd("SMEMBERS").arg(keys.instance_users(instance)).query_async(&mut connection).await?;
        let mut orphans = Vec::new();
        for user in users {
            let (_, after) = self.sync_for(instance, &user, 0, &[]).await?;
            if after > 0 {
                continue;
            }
            let rooms: Option<String> =
                redis::cmd("GET").arg(keys.presence_rooms(&user)).query_async(&mut connection).await?;
            let names: Vec<String> = rooms.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default();
            let rooms = names.iter().filter_map(|r| Room::parse(r).ok()).collect();
            orphans.push(Orphan { user, rooms });
        }
        redis::pipe()
            .del(keys.instance_users(instance))
            .ignore()
            .srem(keys.instances(), instance)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(orphans)
    }
}
