//! Ways in from Redis: what backends publish there becomes a publication or a room operation
//! and takes the Publisher's road like any other way in.
//!
//! - [`redis_json`]: the JSON channels: `invitation-updates`, `notifications`, and
//!   `switchyard:publish` (a publish request as `POST /api/events` takes).
//! - [`emitter`]: the Node `@socket.io/redis-emitter` broadcasts and requests.
//!
//! The cluster bus's subscriber reads these channels ([`crate::cluster::Bus::run`]) and hands
//! each message to the [`Bridge`]. Every instance reads every message: a JSON message is acted
//! on by the one instance that claims it and then published to the whole cluster; an emitter
//! message is applied by each instance to its own connections, as Node's adapter does.

pub mod emitter;
pub mod redis_json;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

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
}

impl Inlet for Bridge {
    async fn receive(&self, channel: BackendChannel, payload: &[u8]) -> Result<(), String> {
        if payload.len() > self.max_payload {
            return Err(format!("{} bytes is more than MAX_PAYLOAD ({})", payload.len(), self.max_payload));
        }
        match channel {
            BackendChannel::EmitterBroadcast => {
                if let Some(publication) = emitter::broadcast(payload)? {
                    self.publisher.deliver_received(&publication).await;
                }
                Ok(())
            }
            BackendChannel::EmitterRequest => {
                if let Some(op) = emitter::request(payload)? {
                    self.publisher.apply_received(&op).await;
                }
                Ok(())
            }
            json => {
                if !self.bus.claim_message(json.name(), payload).await {
                    return Ok(());
                }
                redis_json::handle(self, json, payload).await
            }
        }
    }
}
