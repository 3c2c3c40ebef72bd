//! Switchyard: a real-time server that speaks Socket.IO (v2 to v4 clients) and plain JSON
//! over WebSocket, delivering backend events to exactly the users who may see them.
//!
//! The data has one road:
//!
//! ```text
//! ways in ───────────────► publish path ─────────────► ways out
//! http (publish API, ...)   publish::Publisher           Socket.IO rooms
//! bridge (Redis JSON)       (authorized → numbered →      plain WebSocket subscribers
//! realtime (client events)   delivered → recorded)        history / polling, inbox
//! jobs (invitation expiry)
//! ```
//!
//! - [`config`]: settings from defaults, a file and the environment; the only reader of env vars.
//! - [`startup`]: [`startup::Application`] binds, wires [`state::AppState`], runs, shuts down.
//! - [`auth`]: JWTs from the three token sources, refusals with stable codes, API keys.
//! - [`rooms`]: the only place a room name is built or parsed.
//! - [`publish`]: [`publish::Publication`] and the one function that delivers it.
//! - [`realtime`]: the Socket.IO namespace, connect-time auth, client events.
//! - [`rawws`]: plain JSON over WebSocket (`/ws`, `/api/ws`).
//! - [`access`]: who may read which room (history polling).
//! - [`http`]: the HTTP API (publish, directory, health).
//! - [`directory`]: users, memberships, invitations in the database (sea-orm).
//! - [`catalogue`]: the event names the contracts document, and their payload shapes.
//! - [`invitations`], [`notifications`]: the two domain events several ways in share.
//! - [`presence`]: connections per user, for `user:status`.
//! - [`bridge`]: Redis JSON channels into the publish path.
//! - [`jobs`]: background jobs (invitation expiry).
//! - [`telemetry`]: logging (JSON or text, no secrets).

pub mod access;
pub mod auth;
pub mod bridge;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod directory;
pub mod http;
pub mod invitations;
pub mod jobs;
pub mod notifications;
pub mod presence;
pub mod publish;
pub mod rawws;
pub mod realtime;
pub mod rooms;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use startup::Application;
