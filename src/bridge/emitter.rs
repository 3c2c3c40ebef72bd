//! The Node `@socket.io/redis-emitter` protocol, so NestJS/Node services keep emitting through
//! Redis unchanged (socketioxide-redis does not read this format).
//!
//! - Broadcasts: msgpack `[uid, {type: 2, data: [event, ...args], nsp}, {rooms, except, flags}]`
//!   on `{key}#{nsp}#` or, for exactly one room, `{key}#{nsp}#{room}#`.
//! - Requests: JSON `{type, opts: {rooms, except}, rooms?, close?}` on `{key}-request#{nsp}#`:
//!   2 join, 3 leave, 4 disconnect, 6 server-side emit.
//!
//! Each decodes into what the Publisher delivers or applies: a broadcast into a [`Publication`]
//! whose payload keeps the arguments as sent, a request into a [`RoomOp`]. Every instance
//! receives every message and applies it to its own connections only, so each socket gets each
//! emit once. Arguments keep their number and kind: binary stays binary, and a Date (msgpack
//! timestamp) becomes the ISO string Node's JSON parser would have sent. Plain WebSocket
//! connections get a broadcast that carries exactly one JSON argument.

use chrono::Utc;
use rmpv::Value as Mp;
use serde_json::Value;

use crate::event::EventName;
use crate::publication::{Audience, Payload, Publication, RoomAction, RoomOp, Source};

/// The only namespace Switchyard serves.
const NAMESPACE: &str = "/";

/// One decoded broadcast.
#[derive(Debug, PartialEq)]
pub struct Broadcast {
    /// Who sent it: `emitter` for the emitter, a Node server's adapter's own id otherwise.
    pub uid: String,
    pub event: String,
    pub args: Vec<Mp>,
    pub rooms: Vec<String>,
    pub except: Vec<String>,
}

/// Decodes a broadcast message; `Ok(None)` for another namespace.
pub fn decode_broadcast(payload: &[u8]) -> Result<Option<Broadcast>, String> {
    let value = rmpv::decode::read_value(&mut &payload[..]).map_err(|e| format!("not msgpack: {e}"))?;
    let parts = value.as_array().ok_or("not an array")?;
    let [uid, packet, opts, ..] = parts.as_slice() else {
        return Err("expected [uid, packet, opts]".into());
    };
    if field(packet, "nsp").and_then(Mp::as_str).unwrap_or(NAMESPACE) != NAMESPACE {
        return Ok(None);
    }
    if field(packet, "type").and_then(Mp::as_i64) != Some(2) {
        return Err("not an EVENT packet".into());
    }
    let data = field(packet, "data").and_then(Mp::as_array).ok_or("packet has no data")?;
    let (event, args) = data.split_first().ok_or("packet data is empty")?;
    let event = event.as_str().ok_or("event name is not a string")?.to_owned();
    Ok(Some(Broadcast {
        uid: uid.as_str().unwrap_or_default().to_owned(),
        event,
        args: args.iter().map(normalize).collect(),
        rooms: strings(field(opts, "rooms")),
        except: strings(field(opts, "except")),
    }))
}

pub(crate) fn field<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// Room names, numbers (`io.to(123)`) read as their text.
pub(crate) fn strings(value: Option<&Mp>) -> Vec<String> {
    let name = |v: &Mp| match v {
        Mp::String(s) => s.as_str().map(str::to_owned),
        Mp::Integer(i) => Some(i.to_string()),
        _ => None,
    };
    value.and_then(Mp::as_array).map(|a| a.iter().filter_map(name).collect()).unwrap_or_default()
}

/// Dates (msgpack timestamp extension, type -1) become ISO strings, recursively.
fn normalize(value: &Mp) -> Mp {
    match value {
        Mp::Ext(-1, bytes) => timestamp(bytes).map(Mp::from).unwrap_or_else(|| value.clone()),
        Mp::Array(items) => Mp::Array(items.iter().map(normalize).collect()),
        Mp::Map(entries) => Mp::Map(entries.iter().map(|(k, v)| (k.clone(), normalize(v))).collect()),
        other => other.clone(),
    }
}

/// The msgpack timestamp formats (32, 64 and 96 bit) as JavaScript's `toISOString()`.
fn timestamp(bytes: &[u8]) -> Option<String> {
    let (seconds, nanos) = match bytes.len() {
        4 => (u32::from_be_bytes(bytes.try_into().ok()?) as i64, 0u32),
        8 => {
            let raw = u64::from_be_bytes(bytes.try_into().ok()?);
            ((raw & 0x3_ffff_ffff) as i64, (raw >> 34) as u32)
        }
        12 => (i64::from_be_bytes(bytes[4..12].try_into().ok()?), u32::from_be_bytes(bytes[0..4].try_into().ok()?)),
        _ => return None,
    };
    let time = chrono::DateTime::from_timestamp(seconds, nanos)?;
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A broadcast as the publication this instance delivers to its own connections; `Ok(None)`
/// for another namespace.
pub fn broadcast(payload: &[u8]) -> Result<Option<Publication>, String> {
    decode_broadcast(payload)?.map(publication).transpose()
}

/// A decoded broadcast as a publication (ephemeral, from the emitter).
pub fn publication(broadcast: Broadcast) -> Result<Publication, String> {
    let event = EventName::parse(&broadcast.event).map_err(|e| e.to_string())?;
    let json = match broadcast.args.as_slice() {
        [arg] => json(arg),
        _ => None,
    };
    Ok(Publication {
        id: uuid::Uuid::now_v7(),
        event,
        audience: Audience::from_names(&broadcast.rooms, &broadcast.except),
        data: Payload::Emitted { args: broadcast.args, json },
        source: Source::Emitter,
        published_at: Utc::now(),
        ephemeral: true,
    })
}

/// A msgpack value as JSON; `None` when it holds binary.
pub fn json(value: &Mp) -> Option<Value> {
    Some(match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => i.as_i64().map(Value::from).or_else(|| i.as_u64().map(Value::from))?,
        Mp::F32(f) => serde_json::Number::from_f64(*f as f64).map(Value::Number)?,
        Mp::F64(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        Mp::String(s) => Value::String(s.as_str()?.to_owned()),
        Mp::Array(items) => Value::Array(items.iter().map(json).collect::<Option<_>>()?),
        Mp::Map(entries) => {
            Value::Object(entries.iter().map(|(k, v)| Some((k.as_str()?.to_owned(), json(v)?))).collect::<Option<_>>()?)
        }
        Mp::Binary(_) | Mp::Ext(..) => return None,
    })
}

/// A request (`socketsJoin`, `socketsLeave`, `disconnectSockets`) as the room operation this
/// instance applies to its own connections; `Ok(None)` for what is not for it:
/// - a server-side emit (6): those are for server handlers, and Switchyard has none;
/// - what a Node server's `@socket.io/redis-adapter` asks its peers (0, 1, 5, 7: socket lists,
///   rooms, fetches, broadcasts with acks, the last in msgpack), which an instance that is not
///   counted as a peer must not answer;
/// - the older adapters' forms that name one socket (`{type, sid, room}`, no `opts`), which
///   only the peer holding that socket answers.
///
/// A request with neither `opts` nor `sid` is refused: read as "everyone", a disconnect would
/// close every connection.
pub fn request(payload: &[u8]) -> Result<Option<RoomOp>, String> {
    if payload.first() != Some(&b'{') {
        // Node's adapter sends its broadcasts with acks in msgpack; its JSON requests open with `{`.
        return Ok(None);
    }
    let request: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array).map(|a| a.iter().filter_map(room_name).collect()).unwrap_or_default()
    };
    let kind = request.get("type").and_then(Value::as_i64);
    if matches!(kind, Some(0 | 1 | 5 | 6 | 7)) {
        return Ok(None);
    }
    let Some(opts) = request.get("opts") else {
        if request.get("sid").is_some() {
            return Ok(None);
        }
        return Err(format!("request type {kind:?} has no `opts` (nor a `sid`): it names no connections"));
    };
    let target = Audience::from_names(&list(opts.get("rooms")), &list(opts.get("except")));
    let action = match kind {
        Some(2) => RoomAction::Join(list(request.get("rooms"))),
        Some(3) => RoomAction::Leave(list(request.get("rooms"))),
        Some(4) => RoomAction::Disconnect,
        other => return Err(format!("unknown request type {other:?}")),
    };
    Ok(Some(RoomOp { target, action }))
}

/// A room name as Node sends it: a string, or a number (`io.to(123)`), which Node's rooms hold
/// as that number and which is addressed here by its text.
fn room_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_like_javascript_dates() {
        // notepack encodes new Date('2000-06-13T00:00:00.000Z') as d6 ff 39 45 79 80.
        assert_eq!(timestamp(&[0x39, 0x45, 0x79, 0x80]).unwrap(), "2000-06-13T00:00:00.000Z");
        let with_millis: u64 = (123_000_000u64 << 34) | 960_854_400;
        assert_eq!(timestamp(&with_millis.to_be_bytes()).unwrap(), "2000-06-13T00:00:00.123Z");
    }

    #[test]
    fn a_broadcast_keeps_its_arguments_rooms_and_exceptions() {
        let packet = Mp::Map(vec![
            (Mp::from("type"), Mp::from(2)),
            (Mp::from("data"), Mp::Array(vec![Mp::from("ev"), Mp::from(1), Mp::Binary(vec![1, 2])])),
            (Mp::from("nsp"), Mp::from("/")),
        ]);
        let opts = Mp::Map(vec![
            (Mp::from("rooms"), Mp::Array(vec![Mp::from("org:1")])),
            (Mp::from("except"), Mp::Array(vec![Mp::from("user:2")])),
            (Mp::from("flags"), Mp::Map(vec![])),
        ]);
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, &Mp::Array(vec![Mp::from("emitter"), packet, opts])).unwrap();
        let b = decode_broadcast(&buf).unwrap().unwrap();
        assert_eq!(b.event, "ev");
        assert_eq!(b.args, [Mp::from(1), Mp::Binary(vec![1, 2])]);
        assert_eq!((b.rooms, b.except), (vec!["org:1".to_owned()], vec!["user:2".to_owned()]));

        let p = broadcast(&buf).unwrap().unwrap();
        assert_eq!(
            (p.audience.room_names(), p.audience.except_names()),
            (vec!["org:1".to_owned()], vec!["user:2".to_owned()])
        );
        assert_eq!(p.data.json(), None, "two arguments have no single JSON form");
    }

    #[test]
    fn requests_become_room_operations() {
        let op =
            request(br#"{"type": 2, "opts": {"rooms": ["user:a"], "except": []}, "rooms": ["tenant:t:project:p"]}"#)
                .unwrap()
                .unwrap();
        assert_eq!(op.target.room_names(), ["user:a"]);
        assert_eq!(op.action, RoomAction::Join(vec!["tenant:t:project:p".into()]));
        let all = request(br#"{"type": 4, "opts": {"rooms": [], "except": ["org:1"]}}"#).unwrap().unwrap();
        assert!(all.target.everyone);
        assert_eq!(all.action, RoomAction::Disconnect);
        assert_eq!(request(br#"{"type": 6, "opts": {}}"#).unwrap(), None);
        assert!(request(br#"{"type": 9, "opts": {}}"#).is_err());
        let numeric = request(br#"{"type": 3, "opts": {"rooms": [123]}, "rooms": [7]}"#).unwrap().unwrap();
        assert_eq!(
            (numeric.target.room_names(), numeric.action),
            (vec!["123".to_owned()], RoomAction::Leave(vec!["7".into()]))
        );
    }

    #[test]
    fn what_node_servers_ask_their_adapter_peers_is_left_to_them() {
        for peer_request in [
            r#"{"uid": "AbC12x", "requestId": "r1", "type": 5, "opts": {"rooms": [], "except": []}}"#,
            r#"{"uid": "AbC12x", "requestId": "r2", "type": 1}"#,
            r#"{"uid": "AbC12x", "requestId": "r3", "type": 0, "rooms": []}"#,
        ] {
            assert_eq!(request(peer_request.as_bytes()).unwrap(), None, "{peer_request}");
        }
        // A broadcast with acks: msgpack {uid, requestId, type: 7, packet, opts}.
        assert_eq!(request(&[0x85, 0xa3, b'u', b'i', b'd']).unwrap(), None);
    }

    #[test]
    fn a_request_naming_one_socket_the_old_way_never_reaches_everyone() {
        // socket.io-redis-adapter 7.x: remoteDisconnect(sid, close), remoteJoin(sid, room).
        let legacy_disconnect = br#"{"uid": "AbC12x", "requestId": "r4", "type": 4, "sid": "s1", "close": true}"#;
        assert_eq!(request(legacy_disconnect).unwrap(), None);
        assert_eq!(request(br#"{"requestId": "r5", "type": 2, "sid": "s1", "room": "org:1"}"#).unwrap(), None);
        let err = request(br#"{"type": 4, "close": true}"#).unwrap_err();
        assert!(err.contains("names no connections"), "{err}");
    }
}
