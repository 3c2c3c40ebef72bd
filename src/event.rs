//! Event names as they appear on the wire, and the names of the events the server itself emits.

use std::borrow::Cow;
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
pub struct EventName(Cow<'static, str>);

/// The events the server emits on its own account (the contracts name them).
impl EventName {
    /// A user's first connection opened or his last closed (`{userId, status}`).
    pub const USER_STATUS: EventName = EventName::known("user:status");
    /// A user notification, live or from the inbox.
    pub const NOTIFICATION_NEW: EventName = EventName::known("notification:new");
    /// A notification was read on another connection of the same user (`{id}`).
    pub const NOTIFICATION_READ: EventName = EventName::known("notification:read");
    /// An invitation's status changed.
    pub const INVITATION_UPDATE: EventName = EventName::known("invitation-update");
    /// Someone started / stopped typing in a workspace channel (`{channelId, userId}`).
    pub const TYPING_START: EventName = EventName::known("typing:start");
    pub const TYPING_STOP: EventName = EventName::known("typing:stop");
    /// An opted-in socket's replay is over (`{recovered, missed, cursor}`); live events follow.
    pub const RECOVERY: EventName = EventName::known("recovery");
    /// The connection's token expires soon (`{expiresAt}`): refresh it with `auth:refresh`.
    pub const AUTH_EXPIRING: EventName = EventName::known("auth:expiring");
    /// The connection's token expired (`{expiredAt}`); the server disconnects it next.
    pub const AUTH_EXPIRED: EventName = EventName::known("auth:expired");

    /// A name written in this file; `every_known_name_is_valid` checks each one.
    const fn known(name: &'static str) -> EventName {
        EventName(Cow::Borrowed(name))
    }
}

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
        Ok(EventName(Cow::Owned(name.to_owned())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_valid() {
        for known in [
            EventName::USER_STATUS,
            EventName::NOTIFICATION_NEW,
            EventName::NOTIFICATION_READ,
            EventName::INVITATION_UPDATE,
            EventName::TYPING_START,
            EventName::TYPING_STOP,
            EventName::AUTH_EXPIRING,
            EventName::AUTH_EXPIRED,
            EventName::RECOVERY,
        ] {
            assert_eq!(EventName::parse(known.as_str()), Ok(known.clone()));
        }
    }
}
