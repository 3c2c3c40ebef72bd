//! Who a publication is for: the `to` / `except` objects of the publish API, and the
//! [`Audience`] they resolve to.
//!
//! `to` names one or more of `user`, `org`, `tenant`, `project` (with exactly one `tenant`),
//! `channel` (with one `tenant`: a workspace channel; without: a public channel such as
//! `venue:42`), `invitation`, `socket`, raw `rooms`, or `all: true`. Each takes an id or a list
//! of ids. When `project` or `channel` is given, `tenant` qualifies them and is not itself a
//! target.
//!
//! Switchyard's own bookkeeping rooms (`switchyard#...`, [`rooms::is_bookkeeping`]) are never a
//! target nor an exception: every opted-in socket of every organization is in
//! `switchyard#recovering`, so a publication to it would reach them all. Every bare name a
//! request gives (`channel`, `socket`, `rooms`) passes `addressable`, in `to` and `except`
//! alike, and this parser is the one the publish API, its batch and the Redis JSON bridge share.

use serde::{Deserialize, Deserializer};

use crate::id::LooseId;
use crate::publication::Audience;
use crate::rooms::{self, Room};

/// A request field that does not resolve; `field` is the JSON path at fault (`to.project`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The JSON form of `to` and `except`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub user: Ids,
    #[serde(default)]
    pub org: Ids,
    #[serde(default)]
    pub tenant: Ids,
    #[serde(default)]
    pub project: Ids,
    #[serde(default)]
    pub channel: Ids,
    #[serde(default)]
    pub invitation: Ids,
    #[serde(default)]
    pub socket: Ids,
    #[serde(default)]
    pub rooms: Ids,
}

/// One id or a list of ids; numbers are accepted and read as their decimal text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids(pub Vec<String>);

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(LooseId),
            Many(Vec<LooseId>),
        }
        match OneOrMany::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected an id (string or number) or a list of ids"))?
        {
            OneOrMany::One(one) => Ok(Ids(vec![one.0])),
            OneOrMany::Many(many) => Ok(Ids(many.into_iter().map(|id| id.0).collect())),
        }
    }
}

impl TargetSpec {
    /// Resolves `to` (with `except`) into an audience. `field` prefixes error paths.
    pub fn resolve(&self, except: Option<&TargetSpec>) -> Result<Audience, FieldError> {
        let rooms = self.room_list("to")?;
        if self.all && !rooms.is_empty() {
            return Err(err("to.all", "cannot be combined with other targets"));
        }
        if !self.all && rooms.is_empty() {
            return Err(err(
                "to",
                "names no target; give user, org, tenant, project, channel, invitation, socket, rooms or all: true",
            ));
        }
        let except = match except {
            Some(spec) if spec.all => return Err(err("except.all", "is not allowed")),
            Some(spec) => spec.room_list("except")?,
            None => Vec::new(),
        };
        Ok(Audience { everyone: self.all, rooms, except })
    }

    fn room_list(&self, field: &str) -> Result<Vec<Room>, FieldError> {
        let path = |name: &str| format!("{field}.{name}");
        let at = |name: &'static str| move |e: rooms::RoomError| err(&path(name), e.to_string());
        let mut out = Vec::new();
        for u in &self.user.0 {
            out.push(Room::user(u).map_err(at("user"))?);
        }
        for o in &self.org.0 {
            out.push(Room::org(o).map_err(at("org"))?);
        }
        let scoped = !self.project.0.is_empty() || !self.channel.0.is_empty();
        let single_tenant = match self.tenant.0.as_slice() {
            [t] => Some(t.as_str()),
            _ => None,
        };
        if !self.project.0.is_empty() && single_tenant.is_none() {
            return Err(err(&path("project"), "requires exactly one tenant"));
        }
        for p in &self.project.0 {
            out.push(Room::project(single_tenant.unwrap_or_default(), p).map_err(at("project"))?);
        }
        for c in &self.channel.0 {
            let room = match (single_tenant, self.tenant.0.len()) {
                (Some(t), _) => Room::channel(t, c).map_err(at("channel"))?,
                (None, 0) => match Room::parse(c).map_err(at("channel"))? {
                    room @ Room::Named(_) => addressable(room, &path("channel"))?,
                    _ => {
                        return Err(err(&path("channel"), format!("`{c}` is not a public channel name")));
                    }
                },
                _ => return Err(err(&path("channel"), "takes at most one tenant")),
            };
            out.push(room);
        }
        if !scoped {
            for t in &self.tenant.0 {
                out.push(Room::tenant(t).map_err(at("tenant"))?);
            }
        }
        for i in &self.invitation.0 {
            out.push(Room::invitation(i).map_err(at("invitation"))?);
        }
        for s in &self.socket.0 {
            let sid = rooms::id("socket id", s).map_err(at("socket"))?;
            out.push(addressable(Room::connection(sid), &path("socket"))?);
        }
        for r in &self.rooms.0 {
            out.push(addressable(Room::parse(r).map_err(at("rooms"))?, &path("rooms"))?);
        }
        out.dedup();
        Ok(out)
    }
}

/// `room`, unless it is one of Switchyard's bookkeeping rooms, which no request may name.
fn addressable(room: Room, field: &str) -> Result<Room, FieldError> {
    match rooms::is_bookkeeping(&room.name()) {
        true => Err(err(field, format!("`{room}` is one of Switchyard's own rooms and cannot be addressed"))),
        false => Ok(room),
    }
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> TargetSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn tenant_qualifies_project_and_channel() {
        let a = spec(serde_json::json!({"tenant": "t1", "project": ["p1", 2], "channel": "c"})).resolve(None).unwrap();
        assert_eq!(a.room_names(), ["tenant:t1:project:p1", "tenant:t1:project:2", "tenant:t1:channel:c"]);
    }

    #[test]
    fn channel_without_tenant_is_public_and_never_private() {
        let a = spec(serde_json::json!({"channel": "venue:9"})).resolve(None).unwrap();
        assert_eq!(a.room_names(), ["venue:9"]);
        let e = spec(serde_json::json!({"channel": "user:1"})).resolve(None).unwrap_err();
        assert_eq!(e.field, "to.channel");
    }

    #[test]
    fn empty_target_and_all_with_rooms_are_refused() {
        assert_eq!(TargetSpec::default().resolve(None).unwrap_err().field, "to");
        let e = spec(serde_json::json!({"all": true, "org": "1"})).resolve(None).unwrap_err();
        assert_eq!(e.field, "to.all");
    }

    #[test]
    fn unknown_target_field_is_refused() {
        let e = serde_json::from_value::<TargetSpec>(serde_json::json!({"team": "1"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `team`"), "{e}");
    }

    #[test]
    fn bookkeeping_rooms_are_neither_targets_nor_exceptions() {
        for (to, field) in [
            (serde_json::json!({"rooms": ["org:1", "switchyard#recovering"]}), "to.rooms"),
            (serde_json::json!({"socket": "switchyard#recovering"}), "to.socket"),
            (serde_json::json!({"channel": "switchyard#filtered:venue:1"}), "to.channel"),
        ] {
            assert_eq!(spec(to).resolve(None).unwrap_err().field, field);
        }
        let except = spec(serde_json::json!({"rooms": "switchyard#recovering"}));
        let e = spec(serde_json::json!({"all": true})).resolve(Some(&except)).unwrap_err();
        assert_eq!(e.field, "except.rooms");
    }
}
