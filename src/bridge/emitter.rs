//! The Node `@socket.io/redis-emitter` protocol, so NestJS/Node services keep emitting through
//! Redis unchanged (socketioxide-redis does not read this format).
//!
//! - Broadcasts: msgpack `[uid, {type: 2, data: [event, ...args], nsp}, {rooms, except, flags}]`
//!   on `{key}#{nsp}#` or, for exactly one room, `{key}#{nsp}#{room}#`.
//! - Requests: JSON `{type, opts: {rooms, except}, rooms?, close?}` on `{key}-request#{nsp}#`:
//!   2 join, 3 leave, 4 disconnect, 6 server-side emit.
//!
//! Every instance receives every message and applies it to its own sockets only, so each socket
//! gets each emit once. Arguments keep their number and kind: binary stays binary, and a Date
//! (msgpack timestamp) becomes the ISO string Node's JSON parser would have sent.

use rmpv::Value as Mp;
use serde::Serialize;
use serde::ser::SerializeTuple;
use serde_json::Value;

use crate::publish::{Audience, EventName, Publication, Source};
use crate::rooms::Room;
use crate::state::AppState;

/// The emitter's default key; `REDIS_CHANNEL_PREFIX` goes before it.
pub const KEY: &str = "socket.io";
/// The only namespace Switchyard serves.
const NAMESPACE: &str = "/";

/// Event arguments serialized as a tuple, which Socket.IO sends as separate arguments.
struct Args(Vec<Mp>);

impl Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

/// One decoded broadcast.
#[derive(Debug, PartialEq)]
pub struct Broadcast {
    pub event: String,
    args: Vec<Mp>,
    pub rooms: Vec<String>,
    pub except: Vec<String>,
}

/// Decodes a broadcast message; `Ok(None)` for another namespace.
pub fn decode_broadcast(payload: &[u8]) -> Result<Option<Broadcast>, String> {
    let value = rmpv::decode::read_value(&mut &payload[..]).map_err(|e| format!("not msgpack: {e}"))?;
    let parts = value.as_array().ok_or("not an array")?;
    let [_uid, packet, opts, ..] = parts.as_slice() else {
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
        event,
        args: args.iter().map(normalize).collect(),
        rooms: strings(field(opts, "rooms")),
        except: strings(field(opts, "except")),
    }))
}

fn field<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn strings(value: Option<&Mp>) -> Vec<String> {
    value
        .and_then(Mp::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
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
        12 => (
            i64::from_be_bytes(bytes[4..12].try_into().ok()?),
            u32::from_be_bytes(bytes[0..4].try_into().ok()?),
        ),
        _ => return None,
    };
    let time = chrono::DateTime::from_timestamp(seconds, nanos)?;
    Some(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Delivers a broadcast to this instance's sockets, and to its plain WebSocket subscribers
/// when it carries exactly one JSON argument.
pub async fn deliver(state: &AppState, broadcast: Broadcast) {
    let operators = if broadcast.rooms.is_empty() {
        state.io.broadcast()
    } else {
        state.io.to(broadcast.rooms.clone())
    };
    if let Err(e) = operators
        .except(broadcast.except.clone())
        .emit(&broadcast.event, &Args(broadcast.args.clone()))
        .await
    {
        tracing::debug!(error = %e, "emitter broadcast: some sockets could not be reached");
    }
    if let ([arg], Ok(event)) = (broadcast.args.as_slice(), EventName::parse(&broadcast.event))
        && let Some(data) = json(arg)
    {
        let parse = |names: &[String]| names.iter().filter_map(|n| Room::parse(n).ok()).collect();
        let publication = Publication::ephemeral(
            event,
            Audience {
                everyone: broadcast.rooms.is_empty(),
                rooms: parse(&broadcast.rooms),
                except: parse(&broadcast.except),
            },
            data,
            Source::Emitter,
        );
        state.hub.deliver(&publication, &[]);
    }
}

/// A msgpack value as JSON; `None` when it holds binary.
fn json(value: &Mp) -> Option<Value> {
    Some(match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => i.as_i64().map(Value::from).or_else(|| i.as_u64().map(Value::from))?,
        Mp::F32(f) => serde_json::Number::from_f64(*f as f64).map(Value::Number)?,
        Mp::F64(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
        Mp::String(s) => Value::String(s.as_str()?.to_owned()),
        Mp::Array(items) => Value::Array(items.iter().map(json).collect::<Option<_>>()?),
        Mp::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| Some((k.as_str()?.to_owned(), json(v)?)))
                .collect::<Option<_>>()?,
        ),
        Mp::Binary(_) | Mp::Ext(..) => return None,
    })
}

/// Applies a request (`socketsJoin`, `socketsLeave`, `disconnectSockets`) to this instance's
/// sockets.
pub async fn apply_request(state: &AppState, payload: &[u8]) -> Result<(), String> {
    let request: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let opts = request.get("opts");
    let rooms = list(opts.and_then(|o| o.get("rooms")));
    let except = list(opts.and_then(|o| o.get("except")));
    let operators = if rooms.is_empty() { state.io.broadcast() } else { state.io.to(rooms) }.except(except);
    match request.get("type").and_then(Value::as_i64) {
        Some(2) => operators.join(list(request.get("rooms"))).await.map_err(|e| e.to_string()),
        Some(3) => operators.leave(list(request.get("rooms"))).await.map_err(|e| e.to_string()),
        Some(4) => operators.disconnect().await.map_err(|e| e.to_string()),
        // Server-side emits are for server handlers, and Switchyard has none.
        Some(6) => Ok(()),
        other => Err(format!("unknown request type {other:?}")),
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
    }
}
