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
    Project { tenant: String, project: String },
    Channel { tenant: String, channel: String },
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
        return Err(RoomError::TooLong {
            what,
            value: value.chars().take(32).collect::<String>() + "…",
        });
    }
    if value.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(RoomError::BadCharacter {
            what,
            value: value.to_owned(),
        });
    }
    Ok(value.to_owned())
}

/// Serde helper: an optional id sent as a string or a number (backends differ); `""` and
/// `null` mean absent.
pub fn deserialize_optional_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(_)) | Some(serde_json::Value::Null) | None => None,
        Some(_) => return Err(serde::de::Error::custom("expected an id (string or number)")),
    })
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
        Ok(Room::Project {
            tenant: id("tenant id", tenant_id)?,
            project: id("project id", project_id)?,
        })
    }
    pub fn channel(tenant_id: &str, channel_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Channel {
            tenant: id("tenant id", tenant_id)?,
            channel: id("channel id", channel_id)?,
        })
    }
    pub fn invitation(invitation_id: &str) -> Result<Room, RoomError> {
        Ok(Room::Invitation(id("invitation id", invitation_id)?))
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
                    return Err(RoomError::BadCharacter {
                        what: "room",
                        value: name.to_owned(),
                    });
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
        assert!(matches!(
            Room::user("7:org:1"),
            Err(RoomError::BadCharacter { .. })
        ));
        assert!(Room::project("t", "").is_err());
        assert!(Room::parse("user:").is_err());
        assert_eq!(
            Room::parse("user:1:extra"),
            Err(RoomError::Reserved("user:1:extra".into()))
        );
    }

    #[test]
    fn only_named_rooms_are_public() {
        assert!(Room::parse("user:1").unwrap().is_private());
        assert!(Room::parse("tenant:1:channel:x").unwrap().is_private());
        assert!(!Room::parse("venue_updates").unwrap().is_private());
    }
}
