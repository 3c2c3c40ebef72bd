//! Ways in from Redis: what backends publish there becomes a publication or a room operation
//! and takes the Publisher's road like any other way in.
//!
//! - [`redis_json`]: the JSON channels: `invitation-updates`, `notifications`, and
//!   `switchyard:publish` (a publish request as `POST /api/events` takes).
//! - [`emitter`]: the Node `@socket.io/redis-emitter` broadcasts and requests (with
//!   `NODE_FLEET`, the same channels are read as a Node adapter's peer: [`fleet`]).
//!
//! The cluster bus's subscriber reads these channels ([`crate::cluster::Bus::run`]) and hands
//! each message to the [`Bridge`]. Every instance reads every message: a JSON message is acted
//! on by the one instance that claims it and then published to the whole cluster; an emitter
//! message is applied by each instance to its own connections, as Node's adapter does.

pub mod emitter;
pub mod fleet;
pub mod redis_json;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use self::fleet::NodeFleet;
use crate::catalogue::Catalogue;
use crate::cluster::{BackendChannel, Bus, Inlet};
use crate::publish::Publisher;

/// What the bridge needs: where publications go, the directory (invitation updates), the
/// catalogue (publish requests), and the bus (claims).
pub struct Bridge {
    pub publisher: Publisher,
    pub db: DatabaseConnection,
    pub catalogue: Arc<Catalogue>,
    /// `EVENTS_ALLOW_UNKNOWN`: publish requests may name events outside the catalogue.
    pub events_allow_unknown: bool,
    pub bus: Bus,
    /// `MAX_PAYLOAD`: a larger message is refused.
    pub max_payload: usize,
    /// With `NODE_FLEET`: the Node servers' broadcasts and requests are read as their
    /// adapter's peer, not as the emitter's.
    pub fleet: Option<Arc<NodeFleet>>,
}

impl Inlet for Bridge {
    async fn receive(&self, channel: BackendChannel, payload: &[u8]) -> Result<(), String> {
        if payload.len() > self.max_payload {
            return Err(format!("{} bytes is more than MAX_PAYLOAD ({})", payload.len(), self.max_payload));
        }
        match (channel, &self.fleet) {
            (BackendChannel::EmitterBroadcast, Some(fleet)) => fleet.broadcast(payload).await,
            (BackendChannel::EmitterRequest, Some(fleet)) => fleet.request(payload).await,
            (BackendChannel::EmitterBroadcast, None) => {
                if let Some(publication) = emitter::broadcast(payload)? {
                    self.publisher.deliver_received(&publication).await;
                }
                Ok(())
            }
            (BackendChannel::EmitterRequest, None) => {
                if let Some(op) = emitter::request(payload)? {
                    self.publisher.apply_received(&op).await;
                }
                Ok(())
            }
            (json, _) => {
                if !self.bus.claim_message(json.name(), payload).await {
                    return Ok(());
                }
                redis_json::handle(self, json, payload).await
            }
        }
    }
}
