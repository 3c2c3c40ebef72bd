//! The one context the wiring receives (startup, HTTP handlers, Socket.IO and plain WebSocket
//! handlers): cheap handles only. Domain functions take the handle they use, never this.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::auth::{self, AuthError, Identity, TokenVerifier};
use crate::broker::Broker;
use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::history::History;
use crate::hub::Hub;
use crate::lifetime::Lifetimes;
use crate::metrics::{Metrics, Refusal};
use crate::presence::{self, Presence};
use crate::publish::Publisher;
use crate::rooms::Room;
use crate::sessions::Sessions;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    pub tokens: Arc<TokenVerifier>,
    /// The only way to send a publication anywhere.
    pub publisher: Publisher,
    /// What this instance shares with the others (or keeps alone): numbering, the recovery
    /// log and sessions, presence counts, claims.
    pub broker: Arc<dyn Broker>,
    /// This instance's connections, for their own bookkeeping (registering, joining, draining).
    /// Deliveries reach them through the Publisher.
    pub hub: Arc<Hub>,
    /// Rooms' recorded publications, for reads (polling, catch-up).
    pub history: Arc<History>,
    pub instance: Arc<Instance>,
    /// Known event names and payload shapes.
    pub catalogue: Arc<Catalogue>,
    /// Connections per user, for `user:status`.
    pub presence: Arc<Presence>,
    /// When each connection's token expires.
    pub lifetimes: Arc<Lifetimes>,
    /// Cancelled when the server stops: the bus, jobs and plain WebSocket connections end.
    pub shutdown: CancellationToken,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// What the admin UI is told.
    pub admin: Arc<Admin>,
    /// Engine.IO sessions bound to their owners; the accepted connections.
    pub sessions: Arc<Sessions>,
}

impl AppState {
    /// Verifies a client's token (and, with `AUTH_REQUIRE_USER`, the directory's word on him).
    pub async fn authenticate(&self, token: Option<String>) -> Result<Identity, AuthError> {
        let directory = self.settings.auth_require_user.then_some(&self.db);
        let result = auth::authenticate(&self.tokens, directory, token).await;
        if let Err(e) = &result {
            self.metrics.auth_failed(e.code());
        }
        result
    }

    /// Replaces a connection's token, the same for both protocols (`auth:refresh`, `/ws`
    /// `refresh`): the new token must verify and be the same user's. Says the renewed identity
    /// and the home rooms it gains and loses; the gained ones are already read from Redis, so
    /// the connection can enter them at once. Nothing changes on a refusal.
    pub async fn renew(&self, current: &Identity, token: &str) -> Result<Renewal, AuthError> {
        let renewed = self.authenticate(Some(token.to_owned())).await?;
        if renewed.user_id != current.user_id {
            self.metrics.auth_failed(AuthError::UserMismatch.code());
            return Err(AuthError::UserMismatch);
        }
        let (old, new) = (current.home_rooms(), renewed.home_rooms());
        let gone = old.iter().filter(|r| !new.contains(r)).map(Room::name).collect();
        let added: Vec<String> = new.iter().filter(|r| !old.contains(r)).map(Room::name).collect();
        self.broker.want(&added).await;
        Ok(Renewal { identity: renewed, gone, added })
    }

    /// Refuses a user's next connection when he has `MAX_CONNECTIONS_PER_USER` already, across
    /// the cluster. (Concurrent connections can pass together: the cap is checked, not reserved.)
    pub async fn admit(&self, identity: &Identity) -> Result<(), AuthError> {
        let limit = self.settings.max_connections_per_user;
        if limit > 0 && self.presence.connections_anywhere(&identity.user_id).await >= limit {
            self.metrics.auth_failed(AuthError::TooManyConnections(limit).code());
            return Err(AuthError::TooManyConnections(limit));
        }
        Ok(())
    }

    /// Syncs the user's presence after one of his connections opened or closed, and announces
    /// a cluster-wide transition.
    /// a cluster-wide transition (at once, or at the end of the user's announcement window:
    /// [`Presence::open_window`]).
    pub async fn sync_presence(&self, identity: &Identity) {
        let rooms = identity.status_rooms();
        let user = &identity.user_id;
        let Some(transition) = self.presence.sync(user, &rooms).await else { return };
        if rooms.is_empty() {
            return; // Nobody to tell: no window to keep either.
        }
        if !self.presence.open_window(user, transition, rooms.clone()) {
            self.metrics.refused(Refusal::PresenceChurn);
            return;
        }
        self.announce_presence(user, rooms, transition).await;
        let interval = self.presence.announce_interval();
        if interval.is_zero() {
            return;
        }
        let (state, user) = (self.clone(), user.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some((transition, rooms)) = state.presence.close_window(&user) else { return };
                state.announce_presence(&user, rooms, transition).await;
            }
        });
    }

    async fn announce_presence(&self, user: &str, rooms: Vec<Room>, transition: presence::Transition) {
        if let Some(publication) = presence::announcement(user, rooms, transition)
            && let Err(e) = self.publisher.publish(publication).await
        {
            tracing::warn!(error = %e, "presence announcement failed");
        }
    }
}

/// A token replaced ([`AppState::renew`]).
pub struct Renewal {
    pub identity: Identity,
    /// Home rooms the connection leaves (their filters go with them).
    pub gone: Vec<String>,
    /// Home rooms it enters.
    pub added: Vec<String>,
}

/// This process, as the status endpoints describe it.
pub struct Instance {
    /// Random per start; tells instances of a cluster apart.
    pub id: String,
    pub started: Instant,
    /// Set when a shutdown began: the instance answers not ready while it drains.
    draining: AtomicBool,
}

impl Instance {
    pub fn new() -> Self {
        Instance {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}
