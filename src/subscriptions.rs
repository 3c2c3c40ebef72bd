//! Subscribing a connection to public channels: the same rule and the same limit for
//! Socket.IO (`subscribe` / `unsubscribe` client events) and plain WebSocket (`{type:
//! "subscribe"}`). The caller joins or leaves the room it is given.

use crate::rooms::{ChannelError, ChannelPattern, Room, public_channel};

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("at most {0} subscriptions per connection (MAX_SUBSCRIPTIONS)")]
    TooMany(usize),
}

impl SubscriptionError {
    /// The stable code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            SubscriptionError::Channel(e) => e.code(),
            SubscriptionError::TooMany(_) => "too_many_subscriptions",
        }
    }
}

/// The room a connection that is in `current` rooms joins to subscribe to channel `name`, when
/// it may have `limit` subscriptions. Subscribing again to a channel it has is not refused.
pub fn subscribe<'a>(
    patterns: &[ChannelPattern],
    limit: usize,
    name: &str,
    current: impl IntoIterator<Item = &'a str>,
) -> Result<Room, SubscriptionError> {
    let (room, _) = public_channel(patterns, name)?;
    let wanted = room.name();
    let mut subscribed = 0;
    for current in current {
        if current == wanted {
            return Ok(room);
        }
        subscribed += usize::from(patterns.iter().any(|p| p.matches(current)));
    }
    if subscribed >= limit {
        return Err(SubscriptionError::TooMany(limit));
    }
    Ok(room)
}

/// The room a connection leaves to unsubscribe from channel `name`.
pub fn unsubscribe(patterns: &[ChannelPattern], name: &str) -> Result<Room, SubscriptionError> {
    Ok(public_channel(patterns, name)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_public_channels_only_and_allows_a_repeat() {
        let patterns = ChannelPattern::defaults();
        let limit = 100;
        let mut rooms: Vec<String> = vec!["user:u".into(), "org:o".into(), "ws-1".into()];
        rooms.extend((0..limit).map(|i| format!("venue:{i}")));
        let current = || rooms.iter().map(String::as_str);
        assert_eq!(subscribe(&patterns, limit, "venue:x", current()), Err(SubscriptionError::TooMany(limit)));
        assert_eq!(subscribe(&patterns, limit, "venue:7", current()).unwrap().name(), "venue:7");
        assert_eq!(subscribe(&patterns, limit, "venue:x", current().skip(4)).unwrap().name(), "venue:x");
        assert_eq!(subscribe(&patterns, limit, "user:u", current()).unwrap_err().code(), "private_channel");
    }
}
