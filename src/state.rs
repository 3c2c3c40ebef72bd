//! The one context every handler receives: cheap handles only.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;
use socketioxide::SocketIo;

use crate::auth::TokenVerifier;
use crate::bridge::RedisLink;
use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::presence::Presence;
use crate::publish::Publisher;
use crate::rawws::hub::Hub;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    /// The Socket.IO server: rooms, sockets, the adapter.
    pub io: SocketIo,
    pub tokens: Arc<TokenVerifier>,
    /// The only way to send a publication anywhere.
    pub publisher: Publisher,
    pub instance: Arc<Instance>,
    /// Known event names and payload shapes.
    pub catalogue: Arc<Catalogue>,
    /// Connections per user, for `user:status`.
    pub presence: Arc<Presence>,
    /// Whether Redis answers (status and readiness).
    pub redis: Arc<RedisLink>,
    /// Plain WebSocket connections and their rooms.
    pub hub: Arc<Hub>,
    /// Cancelled when the server stops: bridges, jobs and plain WebSocket connections end.
    pub shutdown: CancellationToken,
}

/// This process, as the status endpoints describe it.
pub struct Instance {
    /// Random per start; tells instances of a cluster apart.
    pub id: String,
    pub started: Instant,
}

impl Instance {
    pub fn new() -> Self {
        Instance {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            started: Instant::now(),
        }
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}
