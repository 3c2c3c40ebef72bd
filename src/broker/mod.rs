//! The broker: everything that depends on whether this instance is alone or one of a cluster
//! (centrifuge's Broker). The Publisher calls it once per publication and never asks which kind
//! it has; presence, recovery and the connection handlers store through it.
//!
//! A broker owns: numbering (history offsets per room, and a position in the recovery log),
//! delivery to every instance (each delivers to its own connections through its hub), room
//! operations and member counts across instances, cluster-wide claims, presence counts and
//! heartbeats, and the recovery log and resumable sessions.
//!
//! - [`memory`]: one instance, no Redis: numbering in this instance's history, the log and the
//!   sessions in memory ([`memory_log`]), delivery straight to the hub.
//! - [`on_redis`]: a cluster on Redis, through the cluster bus ([`crate::cluster`]); while Redis is
//!   unreachable it numbers and delivers on this instance alone, as the memory broker does.
//! - [`local`]: what both share: this instance's history numbering and its hub.
//!
//! Redis Sentinel and Redis Cluster are not brokers of their own: the Redis broker runs on any
//! of the three topologies through the bus, which finds the master (`cluster::topology`).

mod interface;
mod local;
mod memory;
mod memory_log;
mod on_redis;

pub use self::interface::{Broker, BrokerError, Link, save_session};
pub use self::local::Local;
pub use self::memory::MemoryBroker;
pub use self::on_redis::RedisBroker;
pub use crate::cluster::presence::Orphan;

use std::sync::Arc;

use crate::cluster::{Bus, Names};
use crate::config::Settings;
use crate::metrics::Metrics;

/// A broker, and on Redis the bus its subscriber runs on.
pub struct Connected {
    pub broker: Arc<dyn Broker>,
    pub cluster: Option<Cluster>,
}

/// A cluster on Redis: the bus (the admin relay and the bridges' claims use it too) and the
/// broker its subscriber hands publications and room operations to.
#[derive(Clone)]
pub struct Cluster {
    pub bus: Bus,
    pub broker: RedisBroker,
}

/// The broker the settings ask for: on Redis when `REDIS_URL` is set, else in memory.
pub async fn connect(
    settings: &Settings,
    instance: &str,
    local: Local,
    metrics: Arc<Metrics>,
) -> redis::RedisResult<Connected> {
    let window = settings.recovery_window;
    let Some(url) = &settings.redis_url else {
        return Ok(Connected { broker: Arc::new(MemoryBroker::new(local, window)), cluster: None });
    };
    let names = Names {
        prefix: &settings.redis_channel_prefix,
        instance,
        node_adapter_key: &settings.node_adapter_key,
        node_peer: settings.node_fleet,
    };
    let bus = Bus::connect(url.expose(), names, settings.presence_ttl, window, metrics).await?;
    let broker = RedisBroker::new(bus.clone(), local);
    Ok(Connected { broker: Arc::new(broker.clone()), cluster: Some(Cluster { bus, broker }) })
}
