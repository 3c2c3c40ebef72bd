//! Room names: the only place one is built or parsed.
//!
//! | room                              | who is in it                                  |
//! |-----------------------------------|-----------------------------------------------|
//! | `user:{id}`                       | every socket of one user                      |
//! | `org:{id}`                        | every socket of an organization's users       |
//! | `tenant:{id}`                     | every socket of a tenant's users              |
//! | `tenant:{t}:project:{p}`          | members who joined the project                |
//! | `tenant:{t}:channel:{c}`          | members who joined the workspace channel      |
//! | `invitation:{id}`                 | sockets watching one invitation               |
//! | `{socket id}`                     | one socket (so an emitter can address it)     |
//! | anything else                     | a public channel (`venue:42`, `stores`, ...)  |
//!
//! Ids may not contain `:` or whitespace, so a crafted id can never name another room.

use std::fmt;

/// A room a socket can be in or a publication can target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Room {
    User(String),
    Org(String),
    Tenant(String),
    Project {
        tenant: String,
        project: String,
    },
    Channel {
        tenant: String,
        channel: String,
    },
    Invitation(String),
    /// A public channel name or a socket id: addressed by its bare name.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} `{value}` is too long (at most {MAX_ID_LEN} characters)")]
    TooLong { what: &'static str, value: String },
    #[error("{what} `{value}` may not contain `:`, whitespace or control characters")]
    BadCharacter { what: &'static str, value: String },
    #[error("room `{0}` uses a reserved prefix but is not a valid room name")]
    Reserved(String),
}

pub const MAX_ID_LEN: usize = 128;
const MAX_NAMED_LEN: usize = 256;
/// First segments that belong to the structured rooms above.
const RESERVED_PREFIXES: [&str; 4] = ["user", "org", "tenant", "invitation"];

/// Checks one id (user, org, project, ...) and returns it owned.
pub fn id(what: &'static str, value: &str) -> Result<String, RoomError> {
    if value.is_empty() {
        return Err(RoomError::Empty { what });
    }
    if value.len() > MAX_ID_LEN {
        return Err(RoomError::TooLong { what, value: value.chars().take(32).collect::<String>() + "…" });
    }
    if value.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(RoomError::BadCharacter { what, value: value.to_owned() });
    }
    Ok(value.to_owned())
}

impl Room {
    pub fn user(user_id: &str) -> Result<Room, RoomError> {
        Ok(Room::User(id("user id", user_id)?))
    }
    pub fn org(org_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Org(id("organization id", org_id)?))
    }
    pub fn tenant(tenant_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Tenant(id("tenant id", tenant_id)?))
    }
    pub fn project(tenant_id: &str, project_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Project { tenant: id("tenant id", tenant_id)?, project: id("project id", project_id)? })
    }
    pub fn channel(tenant_id: &str, channel_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Channel { tenant: id("tenant id", tenant_id)?, channel: id("channel id", channel_id)? })
    }
    pub fn invitation(invitation_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Invitation(id("invitation id", invitation_id)?))
    }

    /// `venue_updates`: every venue's updates.
    pub fn venue_updates() -> Room {
        Room::Named("venue_updates".into())
    }
    /// `venue:{id}`, `vibe_checks:{id}`, `promotions:{id}`: one venue's channels.
    pub fn venue(venue_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Named(format!("venue:{}", id("venue id", venue_id)?)))
    }
    pub fn vibe_checks(venue_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Named(format!("vibe_checks:{}", id("venue id", venue_id)?)))
    }
    pub fn promotions(venue_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Named(format!("promotions:{}", id("venue id", venue_id)?)))
    }
    /// `stores`: the commerce channel every customer connection is in.
    pub fn stores() -> Room {
        Room::Named("stores".into())
    }
    /// The room every socket that opted into recovery is in, so one broadcast can leave them
    /// out (they get their deliveries one by one, with their cursor).
    pub fn tracked() -> Room {
        Room::Named(format!("{BOOKKEEPING}recovering"))
    }
    /// The room every socket with a filter on `room` is in (SPEC H5).
    pub fn filtered(room: &str) -> Room {
        Room::Named(format!("{BOOKKEEPING}filtered:{room}"))
    }
    /// The room of the sockets whose filter on `room` has the canonical `key` (one group).
    pub fn filter_group(room: &str, key: &str) -> Room {
        Room::Named(format!("{BOOKKEEPING}filter:{room}#{}", sha1_smol::Sha1::from(key).digest()))
    }
    /// One connection's own room, named by its id (a Socket.IO socket id or a plain WebSocket
    /// connection id), so that a backend can address exactly that connection.
    pub fn connection(id: impl fmt::Display) -> Room {
        Room::Named(id.to_string())
    }

    /// A bare name: a public channel or a socket id. Anything that parses as one of the
    /// structured rooms is returned as that room instead.
    pub fn parse(name: &str) -> Result<Room, RoomError> {
        let parts: Vec<&str> = name.split(':').collect();
        match parts.as_slice() {
            ["user", u] => Room::user(u),
            ["org", o] => Room::org(o),
            ["tenant", t] => Room::tenant(t),
            ["tenant", t, "project", p] => Room::project(t, p),
            ["tenant", t, "channel", c] => Room::channel(t, c),
            ["invitation", i] => Room::invitation(i),
            _ => {
                if name.is_empty() {
                    return Err(RoomError::Empty { what: "room" });
                }
                if RESERVED_PREFIXES.contains(&parts[0]) {
                    return Err(RoomError::Reserved(name.to_owned()));
                }
                if name.len() > MAX_NAMED_LEN {
                    return Err(RoomError::TooLong {
                        what: "room",
                        value: name.chars().take(32).collect::<String>() + "…",
                    });
                }
                if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(RoomError::BadCharacter { what: "room", value: name.to_owned() });
                }
                Ok(Room::Named(name.to_owned()))
            }
        }
    }

    /// The name the Socket.IO adapter knows the room by.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Rooms only the server may put a socket in (a client may never subscribe to them).
    pub fn is_private(&self) -> bool {
        !matches!(self, Room::Named(_))
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::User(u) => write!(f, "user:{u}"),
            Room::Org(o) => write!(f, "org:{o}"),
            Room::Tenant(t) => write!(f, "tenant:{t}"),
            Room::Project { tenant, project } => write!(f, "tenant:{tenant}:project:{project}"),
            Room::Channel { tenant, channel } => write!(f, "tenant:{tenant}:channel:{channel}"),
            Room::Invitation(i) => write!(f, "invitation:{i}"),
            Room::Named(n) => f.write_str(n),
        }
    }
}

/// The rooms every connection of a user is in from its first moment: his user room, and his
/// organization's and tenant's when he has them. An id unusable as a room name is skipped
/// rather than joined as a malformed room.
pub fn home_rooms(user: &str, organization: Option<&str>, tenant: Option<&str>) -> Vec<Room> {
    let mut rooms: Vec<Room> = Room::user(user).ok().into_iter().collect();
    rooms.extend(status_rooms(organization, tenant));
    rooms
}

/// What the names of Switchyard's own bookkeeping rooms start with: no client, backend or Node
/// server names one, no session keeps one, and Node servers are not shown them.
const BOOKKEEPING: &str = "switchyard#";

/// Whether `name` is one of Switchyard's bookkeeping rooms ([`Room::tracked`], the filters').
pub fn is_bookkeeping(name: &str) -> bool {
    name.starts_with(BOOKKEEPING)
}

/// The rooms a user's presence (`user:status`) is announced to: his organization and tenant.
pub fn status_rooms(organization: Option<&str>, tenant: Option<&str>) -> Vec<Room> {
    [organization.and_then(|o| Room::org(o).ok()), tenant.and_then(|t| Room::tenant(t).ok())]
        .into_iter()
        .flatten()
        .collect()
}

/// A family of public channels clients may subscribe to: a fixed name (`venue_updates`) or a
/// prefix followed by one id (`venue:{id}`), with the event a plain broadcast to it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPattern {
    /// The fixed name, or the part before `{id}`.
    prefix: String,
    with_id: bool,
    /// The event name of `POST /api/websocket {action: "broadcast"}` to such a channel.
    pub event: String,
}

/// The default channel families of the venue and commerce clients.
const DEFAULT_CHANNELS: [&str; 6] = [
    "venue_updates=venue_update",
    "venue:{id}=venue_update",
    "vibe_checks:{id}=vibe_check",
    "promotions:{id}=promotion",
    "stores=store_updated",
    "store:{id}=product_updated",
];

impl ChannelPattern {
    /// Parses `name`, `prefix:{id}`, optionally followed by `=event`.
    pub fn parse(text: &str) -> Result<ChannelPattern, String> {
        let (pattern, event) = match text.split_once('=') {
            Some((p, e)) => (p.trim(), e.trim().to_owned()),
            None => (text.trim(), "channel_update".to_owned()),
        };
        let (prefix, with_id) = match pattern.strip_suffix("{id}") {
            Some(prefix) => (prefix, true),
            None => (pattern, false),
        };
        let probe = if with_id { format!("{prefix}x") } else { prefix.to_owned() };
        if prefix.is_empty() || prefix.contains('{') || event.is_empty() {
            return Err(format!("`{text}` is not a channel pattern like `venue:{{id}}=venue_update`"));
        }
        match Room::parse(&probe) {
            Ok(Room::Named(_)) => Ok(ChannelPattern { prefix: prefix.to_owned(), with_id, event }),
            _ => Err(format!("`{text}` would name a private room")),
        }
    }

    pub fn defaults() -> Vec<ChannelPattern> {
        DEFAULT_CHANNELS.iter().map(|p| ChannelPattern::parse(p).expect("default patterns are valid")).collect()
    }

    pub fn matches(&self, name: &str) -> bool {
        if !self.with_id {
            return name == self.prefix;
        }
        name.strip_prefix(self.prefix.as_str()).is_some_and(|rest| id("channel id", rest).is_ok())
    }
}

/// Why a client may not subscribe to a channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("`{0}` is a private room; it cannot be subscribed to")]
    Private(String),
    #[error("`{0}` matches no public channel pattern")]
    Unknown(String),
    #[error(transparent)]
    Invalid(#[from] RoomError),
}

impl ChannelError {
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::Private(_) => "private_channel",
            ChannelError::Unknown(_) => "unknown_channel",
            ChannelError::Invalid(_) => "invalid_channel",
        }
    }
}

/// The public channel a client asked for, if `patterns` admit it. Private rooms are refused
/// whatever the patterns say.
pub fn public_channel<'p>(
    patterns: &'p [ChannelPattern],
    name: &str,
) -> Result<(Room, &'p ChannelPattern), ChannelError> {
    let room = match Room::parse(name) {
        Ok(room @ Room::Named(_)) => room,
        Ok(_) | Err(RoomError::Reserved(_)) => return Err(ChannelError::Private(name.to_owned())),
        Err(e) => return Err(ChannelError::Invalid(e)),
    };
    match patterns.iter().find(|p| p.matches(name)) {
        Some(pattern) => Ok((room, pattern)),
        None => Err(ChannelError::Unknown(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_names_round_trip() {
        for name in [
            "user:7",
            "org:42",
            "tenant:t1",
            "tenant:t1:project:p9",
            "tenant:t1:channel:general",
            "invitation:abc",
            "venue:3",
            "stores",
        ] {
            assert_eq!(Room::parse(name).unwrap().name(), name);
        }
    }

    #[test]
    fn ids_cannot_smuggle_another_room() {
        assert!(matches!(Room::user("7:org:1"), Err(RoomError::BadCharacter { .. })));
        assert!(Room::project("t", "").is_err());
        assert!(Room::parse("user:").is_err());
        assert_eq!(Room::parse("user:1:extra"), Err(RoomError::Reserved("user:1:extra".into())));
    }

    #[test]
    fn channel_patterns_admit_their_family_only() {
        let p = ChannelPattern::defaults();
        assert_eq!(public_channel(&p, "venue:42").unwrap().1.event, "venue_update");
        assert_eq!(public_channel(&p, "venue_updates").unwrap().1.event, "venue_update");
        assert_eq!(public_channel(&p, "store:9").unwrap().1.event, "product_updated");
        assert!(matches!(public_channel(&p, "venue:"), Err(ChannelError::Unknown(_))));
        assert!(matches!(public_channel(&p, "venue:1:2"), Err(ChannelError::Unknown(_))));
        assert!(matches!(public_channel(&p, "user:1"), Err(ChannelError::Private(_))));
        assert!(matches!(public_channel(&p, "tenant:1:channel:2"), Err(ChannelError::Private(_))));
        assert!(matches!(public_channel(&p, "user:1:x"), Err(ChannelError::Private(_))));
        assert!(ChannelPattern::parse("user:{id}").is_err());
        assert!(ChannelPattern::parse("org:{id}=x").is_err());
    }

    #[test]
    fn home_rooms_are_the_status_rooms_and_the_users_own() {
        let names = |rooms: Vec<Room>| rooms.iter().map(Room::name).collect::<Vec<_>>();
        assert_eq!(names(home_rooms("u", Some("o"), Some("t"))), ["user:u", "org:o", "tenant:t"]);
        assert_eq!(names(status_rooms(Some("o"), Some("t"))), ["org:o", "tenant:t"]);
        assert_eq!(names(home_rooms("u", Some("bad:id"), None)), ["user:u"]);
    }

    #[test]
    fn only_named_rooms_are_public() {
        assert!(Room::parse("user:1").unwrap().is_private());
        assert!(Room::parse("tenant:1:channel:x").unwrap().is_private());
        assert!(!Room::parse("venue_updates").unwrap().is_private());
    }
}
