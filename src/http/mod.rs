//! The HTTP API. Each submodule owns its routes; [`router`] puts them together.
//!
//! - `publish`: `POST /api/events` and `POST /api/events/batch`, the publish API for backends.
//! - `directory`: users, project/channel memberships and invitations (`/api/users`, ...).
//! - `health`: `/healthz`, `/readyz`; `metrics`: `/metrics` (Prometheus).
//! - `invitations`: `POST /invitation-update`.
//! - `control`: `/api/websocket` (broadcast to a channel, notify a user, status).
//! - `polling`: history and notifications for clients without a WebSocket.
//! - `api_key`, `user_auth`: the extractors that admit backends (API keys) and users (JWT).

mod api_key;
mod control;
mod cors;
mod directory;
mod error;
mod health;
mod invitations;
mod json;
mod metrics;
mod polling;
mod publish;
mod user_auth;

pub use api_key::ApiKey;
pub use cors::cors;
pub use error::ApiError;
pub use json::ApiJson;
pub use user_auth::UserAuth;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(publish::router())
        .merge(directory::router())
        .merge(invitations::router())
        .merge(control::router())
        .merge(polling::router())
}
