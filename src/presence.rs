//! Presence: whether a user has any connection (Socket.IO or plain WebSocket) on any instance,
//! so that `user:status` is announced once when his first connection opens and once when his
//! last closes, cluster-wide, and also when the instance holding his last connection dies.
//!
//! Each instance counts its own connections per user in memory ([`Presence::count_in`] /
//! [`Presence::count_out`], synchronous, so a connection that closes at once is never counted
//! out before it was counted in). [`Presence::sync`] then publishes this instance's count, under
//! a per-user lock, and reports a transition when the cluster-wide total went from zero to some
//! or from some to zero. With Redis the totals live in one hash per user (a field per instance),
//! updated by a Lua script that sums only live instances (each keeps a heartbeat key); an
//! instance whose heartbeat expired is reaped by the others, announcing its users offline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::Identity;
use crate::publish::{Audience, EventName, Publication, Source};
use crate::rooms::Room;
use crate::state::AppState;

pub const EVENT: &str = "user:status";

/// A change of a user's cluster-wide presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Online,
    Offline,
}

impl Transition {
    fn status(self) -> &'static str {
        match self {
            Transition::Online => "online",
            Transition::Offline => "offline",
        }
    }
}

#[derive(Default)]
pub struct Presence {
    /// Open connections per user on this instance.
    local: Mutex<HashMap<String, usize>>,
    /// Serializes the syncs of one user.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Single instance: the count last synced, to detect transitions.
    synced: Mutex<HashMap<String, usize>>,
    cluster: Option<ClusterPresence>,
}

/// Sets this instance's count for a user (HDEL at 0) and returns the live totals before and
/// after. KEYS[1] = the user's hash; ARGV = instance id, count, heartbeat key prefix.
const SYNC: &str = r"
local function live_total()
  local total = 0
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    if redis.call('EXISTS', ARGV[3] .. fields[i]) == 1 then total = total + tonumber(fields[i + 1]) end
  end
  return total
end
local before = live_total()
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
return {before, live_total()}
";

struct ClusterPresence {
    connection: ConnectionManager,
    sync: redis::Script,
    instance: String,
    /// `{prefix}switchyard:`
    prefix: String,
    ttl: Duration,
}

impl ClusterPresence {
    fn user_key(&self, user: &str) -> String {
        format!("{}presence:{user}", self.prefix)
    }
    fn heartbeat_prefix(&self) -> String {
        format!("{}instance:", self.prefix)
    }

    /// Whether an instance's heartbeat key still exists.
    async fn is_alive(&self, instance: &str) -> bool {
        let mut conn = self.connection.clone();
        redis::cmd("EXISTS")
            .arg(format!("{}{instance}", self.heartbeat_prefix()))
            .query_async(&mut conn)
            .await
            .unwrap_or(false)
    }
}

impl Presence {
    /// Presence across the instances sharing `url`; `ttl` is how long an instance that stopped
    /// sending heartbeats still counts as alive.
    pub async fn clustered(url: &str, prefix: &str, instance: &str, ttl: Duration) -> redis::RedisResult<Self> {
        let connection = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Presence {
            cluster: Some(ClusterPresence {
                connection,
                sync: redis::Script::new(SYNC),
                instance: instance.to_owned(),
                prefix: format!("{prefix}switchyard:"),
                ttl,
            }),
            ..Presence::default()
        })
    }

    pub fn count_in(&self, user: &str) {
        *self.local.lock().unwrap().entry(user.to_owned()).or_default() += 1;
    }

    pub fn count_out(&self, user: &str) {
        let mut local = self.local.lock().unwrap();
        if let Some(count) = local.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                local.remove(user);
            }
        }
    }

    /// Open connections of a user on this instance.
    pub fn connections(&self, user: &str) -> usize {
        self.local.lock().unwrap().get(user).copied().unwrap_or(0)
    }

    /// Publishes this instance's count of `user` and returns the cluster-wide transition, if any.
    pub async fn sync(&self, user: &str, rooms: &[Room]) -> Option<Transition> {
        let lock = self.locks.lock().unwrap().entry(user.to_owned()).or_default().clone();
        let _guard = lock.lock().await;
        let count = self.connections(user);
        let (before, after) = match &self.cluster {
            None => {
                let mut synced = self.synced.lock().unwrap();
                let before = synced.get(user).copied().unwrap_or(0);
                if count == 0 {
                    synced.remove(user);
                } else {
                    synced.insert(user.to_owned(), count);
                }
                (before, count)
            }
            Some(cluster) => match self.sync_cluster(cluster, user, count, rooms).await {
                Ok(totals) => totals,
                Err(e) => {
                    tracing::warn!(error = %e, user, "presence: Redis unreachable; status not announced");
                    return None;
                }
            },
        };
        match (before, after) {
            (0, n) if n > 0 => Some(Transition::Online),
            (n, 0) if n > 0 => Some(Transition::Offline),
            _ => None,
        }
    }

    async fn sync_cluster(
        &self,
        cluster: &ClusterPresence,
        user: &str,
        count: usize,
        rooms: &[Room],
    ) -> redis::RedisResult<(usize, usize)> {
        let mut conn = cluster.connection.clone();
        let totals: (usize, usize) = cluster
            .sync
            .key(cluster.user_key(user))
            .arg(&cluster.instance)
            .arg(count)
            .arg(cluster.heartbeat_prefix())
            .invoke_async(&mut conn)
            .await?;
        // What the reaper needs to announce this user offline if this instance dies.
        let users = format!("{}instance-users:{}", cluster.prefix, cluster.instance);
        let rooms_key = format!("{}presence-rooms:{user}", cluster.prefix);
        let names: Vec<String> = rooms.iter().map(Room::name).collect();
        let mut pipe = redis::pipe();
        if count > 0 {
            pipe.sadd(&users, user).ignore().set(&rooms_key, names.join(",")).ignore();
        } else {
            pipe.srem(&users, user).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(totals)
    }

    /// How many instances keep a live heartbeat (1 on a single instance).
    pub async fn live_instances(&self) -> usize {
        let Some(cluster) = &self.cluster else { return 1 };
        let mut conn = cluster.connection.clone();
        let known: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}instances", cluster.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let mut live = 0;
        for instance in known {
            live += usize::from(cluster.is_alive(&instance).await);
        }
        live.max(1)
    }

    /// Whether the user has a connection anywhere in the cluster.
    pub async fn is_online(&self, user: &str) -> bool {
        if self.connections(user) > 0 {
            return true;
        }
        let Some(cluster) = &self.cluster else { return false };
        let mut conn = cluster.connection.clone();
        let fields: redis::RedisResult<HashMap<String, usize>> =
            redis::cmd("HGETALL").arg(cluster.user_key(user)).query_async(&mut conn).await;
        let Ok(fields) = fields else { return false };
        for (instance, count) in fields {
            if count > 0 && cluster.is_alive(&instance).await {
                return true;
            }
        }
        false
    }
}

/// The rooms a user's status is announced to: his organization and tenant.
pub fn status_rooms(identity: &Identity) -> Vec<Room> {
    [
        identity.organization_id.as_deref().and_then(|o| Room::org(o).ok()),
        identity.tenant_id.as_deref().and_then(|t| Room::tenant(t).ok()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Syncs the user's presence and announces a transition.
pub async fn sync_and_announce(state: &AppState, identity: &Identity) {
    let rooms = status_rooms(identity);
    if let Some(transition) = state.presence.sync(&identity.user_id, &rooms).await {
        announce(state, &identity.user_id, rooms, transition).await;
    }
}

/// `user:status` to the given rooms, not to the user's own connections.
async fn announce(state: &AppState, user: &str, rooms: Vec<Room>, transition: Transition) {
    if rooms.is_empty() {
        return;
    }
    let audience = Audience {
        everyone: false,
        rooms,
        except: vec![Room::User(user.to_owned())],
    };
    let data = json!({"userId": user, "status": transition.status()});
    let event = EventName::parse(EVENT).expect("valid event name");
    if let Err(e) = state
        .publisher
        .publish(Publication::ephemeral(event, audience, data, Source::Presence))
        .await
    {
        tracing::warn!(error = %e, "presence announcement failed");
    }
}

/// Keeps this instance's heartbeat alive and reaps dead instances, until `shutdown`; then
/// removes this instance's presence so its users are announced offline at once.
pub async fn maintain(state: AppState, shutdown: CancellationToken) {
    let Some(cluster) = &state.presence.cluster else { return };
    let every = cluster.ttl / 3;
    loop {
        if let Err(e) = beat_and_reap(&state, cluster).await {
            tracing::warn!(error = %e, "presence: heartbeat failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    let mut conn = cluster.connection.clone();
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(format!("{}{}", cluster.heartbeat_prefix(), cluster.instance))
        .query_async(&mut conn)
        .await;
    if let Err(e) = reap(&state, cluster, &cluster.instance).await {
        tracing::warn!(error = %e, "presence: could not clear this instance at shutdown");
    }
}

async fn beat_and_reap(state: &AppState, cluster: &ClusterPresence) -> redis::RedisResult<()> {
    let mut conn = cluster.connection.clone();
    let instances = format!("{}instances", cluster.prefix);
    redis::pipe()
        .cmd("SET")
        .arg(format!("{}{}", cluster.heartbeat_prefix(), cluster.instance))
        .arg(1)
        .arg("PX")
        .arg(cluster.ttl.as_millis() as u64)
        .ignore()
        .sadd(&instances, &cluster.instance)
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    let known: Vec<String> = redis::cmd("SMEMBERS").arg(&instances).query_async(&mut conn).await?;
    for instance in known {
        let alive: bool = redis::cmd("EXISTS")
            .arg(format!("{}{instance}", cluster.heartbeat_prefix()))
            .query_async(&mut conn)
            .await?;
        if alive {
            continue;
        }
        // One instance reaps a dead one.
        let claimed: Option<String> = redis::cmd("SET")
            .arg(format!("{}reap:{instance}", cluster.prefix))
            .arg(&cluster.instance)
            .arg("NX")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await?;
        if claimed.is_some() {
            tracing::warn!(%instance, "presence: instance stopped sending heartbeats; its users go offline");
            reap(state, cluster, &instance).await?;
        }
    }
    Ok(())
}

/// Removes a (dead or stopping) instance's counts and announces its users offline where that
/// leaves them with no connection.
async fn reap(state: &AppState, cluster: &ClusterPresence, instance: &str) -> redis::RedisResult<()> {
    let mut conn = cluster.connection.clone();
    let users_key = format!("{}instance-users:{instance}", cluster.prefix);
    let users: Vec<String> = redis::cmd("SMEMBERS").arg(&users_key).query_async(&mut conn).await?;
    for user in users {
        let (_, after): (usize, usize) = cluster
            .sync
            .key(cluster.user_key(&user))
            .arg(instance)
            .arg(0)
            .arg(cluster.heartbeat_prefix())
            .invoke_async(&mut conn)
            .await?;
        // Announce when no live connection is left anywhere.
        if after == 0 {
            let rooms: Option<String> = redis::cmd("GET")
                .arg(format!("{}presence-rooms:{user}", cluster.prefix))
                .query_async(&mut conn)
                .await?;
            let rooms = rooms
                .unwrap_or_default()
                .split(',')
                .filter_map(|r| Room::parse(r).ok())
                .collect();
            announce(state, &user, rooms, Transition::Offline).await;
        }
    }
    redis::pipe()
        .del(&users_key)
        .ignore()
        .srem(format!("{}instances", cluster.prefix), instance)
        .ignore()
        .query_async::<()>(&mut conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_instance_reports_the_first_and_the_last_connection_once() {
        let p = Presence::default();
        p.count_in("u");
        assert_eq!(p.sync("u", &[]).await, Some(Transition::Online));
        p.count_in("u");
        assert_eq!(p.sync("u", &[]).await, None);
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, None);
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, Some(Transition::Offline));
        assert_eq!(p.sync("u", &[]).await, None, "reported once");
        assert_eq!(p.connections("u"), 0);
    }

    #[tokio::test]
    async fn a_connection_that_closes_before_its_sync_reports_nothing() {
        let p = Presence::default();
        p.count_in("u");
        p.count_out("u");
        assert_eq!(p.sync("u", &[]).await, None);
        assert_eq!(p.sync("u", &[]).await, None);
    }
}
