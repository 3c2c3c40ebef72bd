//! The cluster bus: everything instances of one deployment say to each other through Redis,
//! the machinery under the Redis broker ([`crate::broker::RedisBroker`]). Nothing else in
//! Switchyard talks to Redis.
//!
//! - [`keys`]: the keyspace, every key and channel named once.
//! - [`deliver`]: numbering and publishing a publication in one Lua step, and reading it back.
//! - [`rooms`]: room operations and member counts across instances.
//! - [`locks`]: cluster-wide claims (one instance acts on a message, a job tick, a reaping).
//! - [`presence`]: per-user connection counts by instance, heartbeats, reaping dead instances.
//! - [`recovery`]: the recovery log (a stream) and resumable sessions.
//! - `probe`: a probe through pub/sub every second; the bus counts as delivering only while
//!   probes come back. `topology`: one server, or the master Sentinels name (followed).
//!
//! One subscriber connection ([`Bus::run`]) reads the bus's channels and the backends' channels
//! (JSON channels, the Node emitter) in the order Redis delivers them, hands publications and
//! room operations to the [`Handler`] registered with it (the Redis broker, which delivers them
//! through this instance's hub), backend messages to the [`Inlet`] (the bridge), and what
//! instances tell the admin UIs to the [`Operator`] (the admin relay). A lost
//! connection is retried with backoff. Every command shares one connection setup and one set of
//! timeouts; a Redis that does not answer fails a call within [`REDIS_TIMEOUT`], and callers fall
//! back to this instance alone.

pub mod deliver;
mod generation;
pub mod keys;
pub mod locks;
pub mod presence;
mod probe;
pub mod recovery;
pub mod rooms;
mod topology;

use crate::metrics::{Metrics, RedisFailure};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::keys::BackendChannel;
use self::keys::{Incoming, Keyspace};
use self::topology::Topology;
pub use self::topology::check_url;
use crate::publication::{Offsets, Publication, RoomOp};

/// How long one Redis call (or connecting) may take before the caller gives up on Redis.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A publication as the bus numbered it: history offsets, and its recovery log position (a
/// stream id) when it was logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Numbered {
    pub offsets: Offsets,
    pub position: Option<String>,
}

/// What the bus hands to this instance: the Publisher implements it.
pub trait Handler: Send + Sync + 'static {
    /// A publication numbered by some instance (this one included): deliver it here.
    fn deliver(&self, publication: &Publication, numbered: Numbered) -> impl Future<Output = ()> + Send;
    /// A room operation some instance sent: apply it to the connections here.
    fn apply(&self, op: RoomOp) -> impl Future<Output = ()> + Send;
    /// The recovery log's generation changed (a new master): what was logged before may be
    /// lost, so the sockets resuming from it must be told.
    fn generation_changed(&self);
    /// The connections here in `room`, to answer another instance's count.
    fn count(&self, room: &str) -> usize;
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
    /// Where the master is: one server, or the one the Sentinels name.
    topology: Topology,
    /// Commands (scripts, publishes, locks) to the master; reconnects by itself, and is replaced
    /// when the Sentinels name another master.
    redis: RwLock<Master>,
    keys: Keyspace,
    instance: String,
    /// Whether the subscriber is connected (status, readiness, and whether this instance's own
    /// publications will come back to it).
    connected: AtomicBool,
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
    /// Connects to the Redis at `url`; `prefix` goes before every key and channel.
    pub async fn connect(
        url: &str,
        prefix: &str,
        instance: &str,
        presence_ttl: Duration,
        recovery_window: Duration,
        metrics: Arc<Metrics>,
    ) -> redis::RedisResult<Bus> {
        let topology = Topology::parse(url)?;
        let redis = RwLock::new(Master::connect(topology.master().await?).await?);
        let bus = Bus {
            inner: Arc::new(Inner {
                topology,
                redis,
                keys: Keyspace::new(prefix, instance),
                instance: instance.to_owned(),
                connected: AtomicBool::new(false),
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
        bus.settle_generation(false).await?;
        Ok(bus)
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Tells every instance's admin UIs (the subscribers hand it to their [`Operator`]).
    pub async fn tell_admins(&self, payload: String) -> redis::RedisResult<()> {
        let mut redis = self.connection();
        redis::cmd("PUBLISH").arg(self.inner.keys.admin_channel()).arg(payload).query_async::<()>(&mut redis).await
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

    fn connection(&self) -> ConnectionManager {
        self.inner.redis.read().unwrap().connection.clone()
    }

    /// Resolves once the Sentinels name a master other than the one the commands go to, after
    /// moving the commands there (never, on a single server). The subscriber then reconnects to
    /// the new master too.
    async fn master_moved<H: Handler>(&self, handler: &H) {
        if !self.inner.topology.follows_failover() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(topology::WATCH_EVERY).await;
            if self.follow_master(handler).await {
                return;
            }
        }
    }

    /// Asks the Sentinels for the master and moves the commands to it if it is another one,
    /// then settles the log's generation (telling `handler` when it changed); true when they
    /// moved.
    async fn follow_master<H: Handler>(&self, handler: &H) -> bool {
        let moved = self.inner.topology.follows_failover() && self.move_to_master().await;
        if moved || self.generation_pending() {
            self.settle_generation_for(handler, moved).await;
        }
        moved
    }

    /// Moves the commands to the master the Sentinels name, if it is another one.
    async fn move_to_master(&self) -> bool {
        let Ok(Ok(client)) = tokio::time::timeout(REDIS_TIMEOUT, self.inner.topology.master()).await else {
            return false;
        };
        let (now, was) = (topology::address(&client), self.inner.redis.read().unwrap().address.clone());
        if now == was {
            return false;
        }
        match Master::connect(client).await {
            Ok(master) => {
                tracing::warn!(from = %was, to = %now, "redis: the Sentinels name a new master; moving to it");
                *self.inner.redis.write().unwrap() = master;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, master = %now, "redis: the new master does not answer yet");
                false
            }
        }
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
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.session(&handler, &inlet, &operator) => r,
                _ = self.master_moved(&handler) => Ok(()),
                _ = self.probe_periodically() => Ok(()),
            };
            self.set_disconnected();
            self.count_failure(RedisFailure::Connection);
            match result {
                Ok(()) => tracing::warn!("redis: subscriber connection closed; reconnecting"),
                Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "redis: subscriber connection failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
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
        // Settled at every connection: a master that restarted empty has no generation (what it
        // logged before is gone).
        let moved = self.inner.topology.follows_failover() && self.move_to_master().await;
        self.settle_generation_for(handler, moved).await;
        let client = self.inner.redis.read().unwrap().client.clone();
        let connecting = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub());
        let mut pubsub =
            connecting.await.map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connecting timed out")))??;
        let (channels, pattern) = keys.subscriptions();
        pubsub.subscribe(&channels).await?;
        pubsub.psubscribe(&pattern).await?;
        self.probe_returned();
        self.inner.connected.store(true, Ordering::Relaxed);
        tracing::info!(?channels, %pattern, "redis: subscribed");

        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let channel = message.get_channel_name();
            let payload = message.get_payload_bytes();
            let result = match keys.classify(channel) {
                Some(Incoming::Deliver) => match self.receive(payload) {
                    Ok((publication, numbered)) => {
                        handler.deliver(&publication, numbered).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Some(Incoming::Rooms) => self.room_message(handler, payload).await,
                Some(Incoming::Reply) if payload == probe::PROBE => {
                    self.probe_returned();
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

/// The master the commands go to: its client (the subscriber connects with it), its address,
/// and the commands' connection.
struct Master {
    client: redis::Client,
    address: String,
    connection: ConnectionManager,
}

impl Master {
    async fn connect(client: redis::Client) -> redis::RedisResult<Master> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Master { address: topology::address(&client), client, connection })
    }
}
