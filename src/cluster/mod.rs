//! The cluster bus: everything instances of one deployment say to each other through Redis,
//! the machinery under the Redis broker ([`crate::broker::RedisBroker`]). Nothing else in
//! Switchyard talks to Redis.
//!
//! - [`keys`]: the keyspace, every key and channel named once.
//! - [`deliver`]: numbering and publishing a publication in one Lua step, and reading it back.
//! - [`rooms`]: room operations and member counts across instances.
//! - [`locks`]: cluster-wide claims (one instance acts on a message, a job tick, a reaping).
//! - [`node_fleet`]: what instances say to Node servers' `@socket.io/redis-adapter` (`NODE_FLEET`).
//! - [`presence`]: per-user connection counts by instance, heartbeats, reaping dead instances.
//! - [`recovery`]: the recovery log (a stream) and resumable sessions.
//! - `interest`: the rooms whose channels this instance reads (those it has members in).
//! - `probe`: a probe through pub/sub every second; the bus counts as delivering only while
//!   probes come back. `topology`: one server, the master Sentinels name (followed), or a Redis
//!   Cluster; `connection`: the commands' and the subscriber's connections on each.
//!
//! One subscriber connection ([`Bus::run`]) reads the bus's channels and the backends' channels
//! (JSON channels, the Node emitter) in the order Redis delivers them, hands publications and
//! room operations to the [`Handler`] registered with it (the Redis broker, which delivers them
//! through this instance's hub), backend messages to the [`Inlet`] (the bridge), and what
//! instances tell the admin UIs to the [`Operator`] (the admin relay). A lost
//! connection is retried with backoff. Every command shares one connection setup and one set of
//! timeouts; a Redis that does not answer fails a call within [`REDIS_TIMEOUT`], and callers fall
//! back to this instance alone.

mod connection;
pub mod deliver;
mod generation;
mod interest;
pub mod keys;
pub mod locks;
pub mod node_fleet;
pub mod presence;
mod probe;
pub mod recovery;
pub mod rooms;
mod topology;

use crate::metrics::{Metrics, RedisFailure};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::connection::Commands;
pub use self::connection::REDIS_TIMEOUT;
pub use self::keys::{BackendChannel, Names};
use self::keys::{Incoming, Keyspace};
use self::topology::{Master, Topology};
use crate::publication::{Offsets, Publication, RoomOp};

/// A publication as the bus numbered it: history offsets, and its recovery log position (a
/// stream id) when it was logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbered {
    pub offsets: Offsets,
    pub position: Option<String>,
}

/// What the bus hands to this instance: the Redis broker implements it (`broker::on_redis`).
pub trait Handler: Send + Sync + 'static {
    /// A publication numbered by some instance (this one included): deliver it here.
    fn deliver(&self, publication: &Publication, numbered: Numbered) -> impl Future<Output = ()> + Send;
    /// A room operation some instance sent: apply it to the connections here.
    fn apply(&self, op: RoomOp) -> impl Future<Output = ()> + Send;
    /// The recovery log's generation changed (a new master): what was logged before may be
    /// lost, so the sockets resuming from it must be told.
    fn generation_changed(&self);
    /// The subscriber is back after being away: what was published meanwhile did not reach the
    /// connections here (the tracked ones resume from the log, which has it).
    fn resubscribed(&self);
    /// The connections here in `room`, to answer another instance's count.
    fn count(&self, room: &str) -> usize;
    /// The rooms with a connection here (the others' channels need not be read).
    fn rooms_here(&self) -> impl Future<Output = std::collections::HashSet<String>> + Send;
}

/// What instances tell the operators' screens (the admin UI's relay implements it).
pub trait Operator: Send + Sync + 'static {
    fn relay(&self, payload: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
}

/// What backends publish on Redis (the bridge implements it).
pub trait Inlet: Send + Sync + 'static {
    fn receive(&self, channel: BackendChannel, payload: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
}

/// A handle on the bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the master is: one server, the one the Sentinels name, or a cluster's.
    topology: Topology,
    /// Commands (scripts, publishes, locks) to the master; reconnects by itself, and is replaced
    /// when the Sentinels name another master.
    redis: RwLock<Master>,
    /// The rooms whose channels the subscriber reads.
    interest: interest::Interest,
    keys: Keyspace,
    instance: String,
    /// Whether the subscriber is connected (status, readiness, and whether this instance's own
    /// publications will come back to it).
    connected: AtomicBool,
    /// How many times the master moved (see [`Bus::master_moved`]).
    moves: AtomicU64,
    /// Whether a subscriber connected before (a later one follows a gap).
    subscribed_before: AtomicBool,
    numbering: deliver::Numbering,
    /// Count queries waiting for answers.
    pending_counts: Mutex<HashMap<Uuid, tokio::sync::mpsc::UnboundedSender<usize>>>,
    presence: presence::Scripts,
    /// When a probe of the bus last came back.
    probes: probe::Probes,
    /// The recovery log's generation.
    generation: generation::Generation,
    /// How long an instance that stopped sending heartbeats still counts as alive.
    presence_ttl: Duration,
    /// How long the log and disconnected sessions are kept for resumption.
    recovery_window: Duration,
    /// Where Redis failures are counted.
    metrics: Arc<Metrics>,
}

impl Bus {
    /// Connects to the Redis at `url`, with the names of `names`.
    pub async fn connect(
        url: &str,
        names: Names<'_>,
        presence_ttl: Duration,
        recovery_window: Duration,
        metrics: Arc<Metrics>,
    ) -> redis::RedisResult<Bus> {
        let topology = Topology::parse(url)?;
        let keys = Keyspace::new(names.prefix, names.instance, topology.is_cluster())
            .with_node_adapter(names.node_adapter_key, names.node_peer);
        let instance = names.instance;
        let redis = RwLock::new(topology.master().await?);
        let bus = Bus {
            inner: Arc::new(Inner {
                topology,
                redis,
                interest: interest::Interest::default(),
                keys,
                instance: instance.to_owned(),
                connected: AtomicBool::new(false),
                moves: AtomicU64::new(0),
                subscribed_before: AtomicBool::new(false),
                numbering: deliver::Numbering::default(),
                pending_counts: Mutex::default(),
                presence: presence::Scripts::default(),
                probes: probe::Probes::default(),
                generation: generation::Generation::default(),
                presence_ttl,
                recovery_window,
                metrics,
            }),
        };
        if bus.inner.topology.is_cluster() {
            bus.move_to_master().await;
        }
        bus.settle_generation(false).await?;
        Ok(bus)
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Tells every instance's admin UIs (the subscribers hand it to their [`Operator`]).
    pub async fn tell_admins(&self, payload: String) -> redis::RedisResult<()> {
        let mut redis = self.connection();
        let publish = self.inner.keys.publish_command();
        redis::cmd(publish).arg(self.inner.keys.admin_channel()).arg(payload).query_async::<()>(&mut redis).await
    }

    /// Counts a Redis failure (the callers that fall back on this instance alone say which).
    pub fn count_failure(&self, failure: RedisFailure) {
        self.inner.metrics.redis_failed(failure);
    }

    /// Whether the subscriber is connected.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Notes that Redis failed a call: until the subscriber is back, this instance delivers
    /// its own publications itself.
    pub fn set_disconnected(&self) {
        self.inner.connected.store(false, Ordering::Relaxed);
    }

    fn connection(&self) -> Commands {
        self.inner.redis.read().unwrap().connection.clone()
    }

    /// Resolves once the master moved since `seen` (a count of [`Bus::moves`]), whoever noticed
    /// it (this watch, every [`topology::WATCH_EVERY`], or a resume); never on a single server.
    /// The subscriber then reconnects to the new master too.
    async fn master_moved<H: Handler>(&self, handler: &H, seen: u64) {
        if !self.inner.topology.follows_failover() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(topology::WATCH_EVERY).await;
            self.follow_master(handler).await;
            if self.moves() != seen {
                return;
            }
        }
    }

    /// How many times the master moved since the bus connected.
    fn moves(&self) -> u64 {
        self.inner.moves.load(Ordering::Relaxed)
    }

    /// Asks the Sentinels for the master and moves the commands to it if it is another one,
    /// then settles the log's generation (telling `handler` when it changed); true when they
    /// moved.
    pub async fn follow_master<H: Handler>(&self, handler: &H) -> bool {
        let moved = self.inner.topology.follows_failover() && self.move_to_master().await;
        if moved || self.generation_pending() {
            self.settle_generation_for(handler, moved).await;
        }
        moved
    }

    /// Moves the commands to the master the Sentinels name, if it is another one; on a cluster,
    /// notes which master holds the bus's slot. True when the master changed.
    async fn move_to_master(&self) -> bool {
        if self.inner.topology.is_cluster() {
            let Some(now) = self.slot_master().await else { return false };
            let mut master = self.inner.redis.write().unwrap();
            let was = std::mem::replace(&mut master.address, now.clone());
            let moved = !was.is_empty() && was != now;
            if moved {
                tracing::warn!(from = %was, to = %now, "redis: another master holds the bus's slot");
                self.inner.moves.fetch_add(1, Ordering::Relaxed);
            }
            return moved;
        }
        let Ok(Some(Ok(client))) = tokio::time::timeout(REDIS_TIMEOUT, self.inner.topology.named_master()).await else {
            return false;
        };
        let (now, was) = (topology::address(&client), self.inner.redis.read().unwrap().address.clone());
        if now == was {
            return false;
        }
        match Master::server(client).await {
            Ok(master) => {
                tracing::warn!(from = %was, to = %now, "redis: the Sentinels name a new master; moving to it");
                *self.inner.redis.write().unwrap() = master;
                self.inner.moves.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, master = %now, "redis: the new master does not answer yet");
                false
            }
        }
    }

    /// On a cluster, the address of the master holding the bus's slot, as the cluster says.
    async fn slot_master(&self) -> Option<String> {
        let mut redis = self.connection();
        let key = self.inner.keys.generation();
        let asking = async {
            let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query_async(&mut redis).await?;
            let slots: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut redis).await?;
            redis::RedisResult::Ok(slot_owner(slots, slot))
        };
        tokio::time::timeout(REDIS_TIMEOUT, asking).await.ok()?.ok()?
    }

    /// Runs the subscriber until `shutdown`: reconnects with backoff, subscribes every channel
    /// again, and handles each message in the order Redis delivers them.
    pub async fn run<H: Handler, I: Inlet, O: Operator>(
        self,
        handler: H,
        inlet: I,
        operator: O,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            // Settled at every connection: a master that restarted empty has no generation (what
            // it logged before is gone). The subscriber connects to the master known now; a move
            // after this ends it.
            let settling = async {
                let moved = self.inner.topology.follows_failover() && self.move_to_master().await;
                self.settle_generation_for(&handler, moved).await;
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = settling => {}
            }
            let moves = self.moves();
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.session(&handler, &inlet, &operator) => r,
                _ = self.master_moved(&handler, moves) => Ok(()),
                _ = self.probe_periodically(&handler) => Ok(()),
                _ = self.forget_empty_rooms(&handler) => Ok(()),
            };
            self.listener_gone();
            self.set_disconnected();
            self.count_failure(RedisFailure::Connection);
            match result {
                Ok(()) => tracing::warn!("redis: subscriber connection closed; reconnecting"),
                Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "redis: subscriber connection failed"),
            }
            // A new master named meanwhile is tried at once.
            let moved = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => false,
                _ = self.master_moved(&handler, moves) => true,
            };
            backoff = if moved { Duration::from_millis(100) } else { (backoff * 2).min(Duration::from_secs(5)) };
        }
    }

    /// One subscriber connection's life.
    async fn session<H: Handler, I: Inlet, O: Operator>(
        &self,
        handler: &H,
        inlet: &I,
        operator: &O,
    ) -> redis::RedisResult<()> {
        let keys = &self.inner.keys;
        let opener = self.inner.redis.read().unwrap().opener.clone();
        let (mut listener, mut messages) = tokio::time::timeout(REDIS_TIMEOUT * 2, opener.listen())
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connecting timed out")))??;
        let (backends, patterns) = keys.backend_channels();
        listener.subscribe_backends(&backends, &patterns).await?;
        listener.subscribe_bus(&keys.bus_channels()).await?;
        self.subscribe_wanted(listener).await?;
        self.probe_returned();
        self.inner.connected.store(true, Ordering::Relaxed);
        if self.inner.subscribed_before.swap(true, Ordering::Relaxed) {
            handler.resubscribed();
        }
        tracing::info!(rooms = self.rooms_read(), sharded = keys.sharded(), "redis: subscribed");

        while let Some(message) = messages.next().await {
            let (channel, payload) = (message.channel.as_str(), message.payload.as_slice());
            let result = match keys.classify(channel) {
                Some(Incoming::Deliver) => match self.receive(payload) {
                    Ok(Some((publication, numbered))) => {
                        handler.deliver(&publication, numbered).await;
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                Some(Incoming::Rooms) => self.room_message(handler, payload).await,
                Some(Incoming::Reply) if payload == probe::PROBE => {
                    // Through the subscriber: it is connected, whatever a failed command said.
                    self.probe_returned();
                    self.inner.connected.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Some(Incoming::Reply) => self.count_answered(payload),
                Some(Incoming::Admin) => operator.relay(payload).await,
                Some(Incoming::Backend(kind)) => inlet.receive(kind, payload).await,
                None => Err("not a channel this instance reads".into()),
            };
            if let Err(reason) = result {
                tracing::warn!(%channel, %reason, "redis: message dropped");
                self.count_failure(RedisFailure::Message);
            }
        }
        Ok(())
    }
}

/// The master's address in a `CLUSTER SLOTS` answer for the range holding `slot`.
fn slot_owner(slots: redis::Value, slot: i64) -> Option<String> {
    let redis::Value::Array(ranges) = slots else { return None };
    ranges.into_iter().find_map(|range| {
        let redis::Value::Array(fields) = range else { return None };
        let mut fields = fields.into_iter();
        let start: i64 = redis::from_redis_value(fields.next()?).ok()?;
        let end: i64 = redis::from_redis_value(fields.next()?).ok()?;
        let redis::Value::Array(master) = fields.next()? else { return None };
        let mut master = master.into_iter();
        let host: String = redis::from_redis_value(master.next()?).ok()?;
        let port: i64 = redis::from_redis_value(master.next()?).ok()?;
        (start..=end).contains(&slot).then(|| format!("{host}:{port}"))
    })
}
