//! Event names as they appear on the wire.

use std::fmt;

/// Names the Socket.IO client library uses for itself; a publication may not shadow them.
const RESERVED: [&str; 14] = [
    "connect",
    "connect_error",
    "connect_timeout",
    "disconnect",
    "disconnecting",
    "error",
    "newListener",
    "removeListener",
    "ping",
    "pong",
    "reconnect",
    "reconnect_attempt",
    "reconnect_error",
    "reconnect_failed",
];
const MAX_LEN: usize = 128;

/// A validated event name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event name must not be empty")]
    Empty,
    #[error("event name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("event name `{0}` is reserved by Socket.IO")]
    Reserved(String),
    #[error("event name `{0}` contains whitespace or control characters")]
    BadCharacter(String),
}

impl EventName {
    pub fn parse(name: &str) -> Result<Self, EventError> {
        if name.is_empty() {
            return Err(EventError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(EventError::TooLong);
        }
        if RESERVED.contains(&name) {
            return Err(EventError::Reserved(name.to_owned()));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EventError::BadCharacter(name.to_owned()));
        }
        Ok(EventName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
