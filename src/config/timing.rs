//! What a peer must do in time: send its request (`REQUEST_HEADER_TIMEOUT`,
//! `REQUEST_BODY_TIMEOUT`, `MAX_PENDING_CONNECTIONS_PER_ADDRESS`) and answer Socket.IO's
//! heartbeat (`PING_INTERVAL`, `PING_TIMEOUT`, `CONNECT_TIMEOUT`).

use std::time::Duration;

use super::{ConfigError, RawSettings, values};

/// What a peer must do in time, before the server knows who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSettings {
    /// A request head must arrive whole within this long (also how long a kept-alive connection
    /// may stay idle between requests).
    pub header_timeout: Duration,
    /// A request body must arrive whole within this long of its first read.
    pub body_timeout: Duration,
    /// Connections from one client address that have not sent a request head yet.
    pub pending_per_address: usize,
}

/// Engine.IO's heartbeat and Socket.IO's namespace deadline, as Node's `pingInterval`,
/// `pingTimeout` and `connectTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketIoTiming {
    /// How often the server pings each connection.
    pub ping_interval: Duration,
    /// How long a ping may wait for its pong before the connection is closed.
    pub ping_timeout: Duration,
    /// How long a new connection may take to join a namespace before it is closed.
    pub connect_timeout: Duration,
}

pub(super) fn requests(raw: &RawSettings) -> Result<RequestSettings, ConfigError> {
    Ok(RequestSettings {
        header_timeout: values::parse_duration("REQUEST_HEADER_TIMEOUT", raw.request_header_timeout.as_deref(), "20s")?,
        body_timeout: values::parse_duration("REQUEST_BODY_TIMEOUT", raw.request_body_timeout.as_deref(), "30s")?,
        pending_per_address: values::positive(
            "MAX_PENDING_CONNECTIONS_PER_ADDRESS",
            raw.max_pending_connections_per_address.as_deref(),
            512,
        )?,
    })
}
