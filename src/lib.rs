//! Switchyard: a real-time server that speaks Socket.IO (v2 to v4 clients) and plain JSON
//! over WebSocket, delivering backend events to exactly the users who may see them.
//!
//! A publication has one road, through four modules read in one direction:
//!
//! ```text
//! ways in                      publish::Publisher      broker::Broker (one of)         hub::Hub
//! http (publish API, ...)  ─►  history rooms,      ─►  memory: number in history, ─►  this instance's
//! bridge (Redis JSON)          one call to the          log, deliver here              Socket.IO sockets
//! realtime (client events)     broker, then record  ─►  redis: the bus numbers and  ─► (tracked ones with
//! jobs, presence               durably                  publishes in one Lua step;     their cursor) and
//!                                                       every instance's subscriber    plain WebSocket
//!                                                       delivers to its own hub        connections
//! bridge (Node emitter) ──────► Publisher::deliver_received ─────────────────────────►  (every instance
//!                                                                                       itself)
//! ```
//!
//! The broker is the one place that knows whether this instance is alone or one of a cluster:
//! numbering, the recovery log and sessions, room operations and counts across instances,
//! presence totals and claims. Room operations (joins, leaves, disconnects) take the same road
//! as [`publication::RoomOp`], and the broker saves the sessions they change.
//!
//! - [`publication`], [`event`], [`rooms`], [`id`]: what travels, the names it uses, the only
//!   place a room name is built or parsed, and ids given as strings or numbers.
//! - [`publish`]: the Publisher, the notification inbox, the publish request.
//! - [`broker`]: what one instance keeps alone or a cluster shares, behind one interface, in
//!   memory or on Redis.
//! - [`cluster`]: everything instances say to each other through Redis (the Redis broker's
//!   machinery, the admin relay, the backends' channels); every key and channel.
//! - [`hub`]: this instance's connections, both protocols; the only writer to them.
//! - [`history`]: per-room offsets, group-committed writes, reads for polling, retention.
//! - [`recovery`]: lossless reconnects: the recovery log's positions, cursors and sessions.
//! - Ways in: [`http`] (the HTTP API), [`bridge`] (Redis JSON channels, the Node emitter),
//!   [`realtime`] (Socket.IO: connect-time auth, client events), [`rawws`] (plain WebSocket,
//!   `/ws` and `/api/ws`), [`jobs`] (invitation expiry).
//! - Domain: [`auth`] (tokens and refusals), [`access`] (who may read which room),
//!   [`directory`] (users, memberships, invitations in the database), [`catalogue`] (the
//!   contracts' events and payload shapes), [`invitations`], [`notifications`] (domain events
//!   several ways in share), [`presence`] (who is online, cluster-wide), [`subscriptions`]
//!   (public channels, one rule for both protocols), [`lifetime`] (connections bound to their
//!   token's expiry), [`filters`] (a connection's filter on a room: event names and fields),
//!   [`limits`] (the per-connection token bucket of `CLIENT_EVENT_RATE`).
//! - [`sessions`]: Engine.IO sessions bound to the client address that opened them (behind
//!   trusted proxies), the accepted connections kept so that one can be cut (a slow consumer, a
//!   drain), and the digest logs name a session by.
//! - Operations: [`metrics`] (`/metrics`), [`admin`] (the `@socket.io/admin-ui` protocol on
//!   `/admin`, across instances), [`demo`] (`/realtime-demo`), [`tls`] (HTTPS and WSS).
//! - Wiring: [`config`] (settings; the only reader of env vars), [`serve`] (the HTTP server
//!   loop: hyper with request head and body deadlines and a per-address cap on connections
//!   that have not sent a request yet), [`startup`]
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
pub mod broker;
pub mod catalogue;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod directory;
pub mod event;
pub mod filters;
pub mod history;
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
pub mod serve;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod subscriptions;
pub mod telemetry;
pub mod tls;

pub use startup::Application;
