//! Switchyard: a real-time server that speaks Socket.IO (v2 to v4 clients) and plain JSON
//! over WebSocket, delivering backend events to exactly the users who may see them.
//!
//! A publication has one road, through three modules read in one direction:
//!
//! ```text
//! ways in                      publish::Publisher        cluster::Bus             hub::Hub
//! http (publish API, ...)  ─►  number (history rooms) ─► Redis: one Lua step ──►  this instance's
//! bridge (Redis JSON)          hand to the bus        numbers and publishes;    Socket.IO sockets
//! realtime (client events)     (or deliver here)      every instance reads it   and plain WebSocket
//! jobs, presence               record, durably        and hands it back to      connections, each
//!                                                     its Publisher ─────────►  framed once
//! bridge (Node emitter) ─────────────────────────────────────────────────────►  (received by every
//!                                                                               instance itself)
//! ```
//!
//! Without Redis (or while it is down), the Publisher delivers to its own hub directly.
//! Room operations (joins, leaves, disconnects) take the same road as [`publication::RoomOp`].
//!
//! - [`publication`], [`event`], [`rooms`], [`id`]: what travels, the names it uses, the only
//!   place a room name is built or parsed, and ids given as strings or numbers.
//! - [`publish`]: the Publisher, history, the notification inbox, the publish request.
//! - [`cluster`]: everything instances say to each other through Redis; every key and channel.
//! - [`hub`]: this instance's connections, both protocols.
//! - [`recovery`]: lossless reconnects: the recovery log's positions, cursors, sessions, and the
//!   tracker that ends each delivery to an opted-in socket with its cursor.
//! - Ways in: [`http`] (the HTTP API), [`bridge`] (Redis JSON channels, the Node emitter),
//!   [`realtime`] (Socket.IO: connect-time auth, client events), [`rawws`] (plain WebSocket,
//!   `/ws` and `/api/ws`), [`jobs`] (invitation expiry).
//! - Domain: [`auth`] (tokens and refusals), [`access`] (who may read which room),
//!   [`directory`] (users, memberships, invitations in the database), [`catalogue`] (the
//!   contracts' events and payload shapes), [`invitations`], [`notifications`] (domain events
//!   several ways in share), [`presence`] (who is online, cluster-wide), [`subscriptions`]
//!   (public channels, one rule for both protocols), [`lifetime`] (connections bound to their
//!   token's expiry).
//! - [`sessions`]: Engine.IO sessions bound to the client address that opened them (behind
//!   trusted proxies), the accepted connections kept so that one can be cut (a slow consumer, a
//!   drain), and the digest logs name a session by.
//! - Operations: [`metrics`] (`/metrics`), [`admin`] (the `@socket.io/admin-ui` protocol on
//!   `/admin`, across instances), [`demo`] (`/realtime-demo`), [`tls`] (HTTPS and WSS).
//! - Wiring: [`config`] (settings; the only reader of env vars), [`startup`]
//!   ([`startup::Application`] binds, wires [`state::AppState`], runs, shuts down), [`state`],
//!   [`background`] (every background task: the bus and bridges, jobs, history pruning,
//!   presence upkeep, token expiry, freed memory back to the system, session sweeping),
//!   [`telemetry`] (logging), [`cli`].
//!
//! Domain modules take the handles they use (`&DatabaseConnection`, `&Publisher`); only the
//! wiring sees `AppState`. No module imports one that imports it back.

pub mod access;
pub mod admin;
pub mod auth;
pub mod background;
pub mod bridge;
pub mod catalogue;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod directory;
pub mod event;
pub mod http;
pub mod hub;
pub mod id;
pub mod invitations;
pub mod jobs;
pub mod lifetime;
pub mod limits;
pub mod metrics;
pub mod notifications;
pub mod presence;
pub mod publication;
pub mod publish;
pub mod rawws;
pub mod realtime;
pub mod recovery;
pub mod rooms;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod subscriptions;
pub mod telemetry;
pub mod tls;

pub use startup::Application;
