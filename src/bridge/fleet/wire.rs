//! The messages of Node's `@socket.io/redis-adapter` 8.x (the classic adapter, on
//! `{key}#/#`, `{key}-request#/#` and `{key}-response#/#`) that a peer reads and writes.
//!
//! Requests are JSON but for a broadcast with acknowledgements, which is msgpack (a JSON
//! message opens with `{`). By `type`: 0 socket ids, 1 every room, 2 join, 3 leave,
//! 4 disconnect (with `opts` for an audience, or the older `sid` form for one socket),
//! 5 fetch sockets, 6 server-side emit, 7 broadcast with acknowledgements. Answers carry the
//! request's `requestId`; a broadcast with acknowledgements is answered once with the number of
//! clients reached (type 8, JSON) and then once per acknowledgement (type 9, msgpack). A
//! broadcast is msgpack `[uid, {type: 2, data: [event, ...args], nsp}, {rooms, except, flags}]`.

use std::time::Duration;

use rmpv::Value as Mp;
use serde_json::{Value, json};

use crate::bridge::emitter::{self, field, strings};
use crate::publication::{Audience, Payload, Publication, RoomAction, RoomOp};

/// How long a broadcast with acknowledgements waits when its sender named no timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// One request of a Node server.
#[derive(Debug, PartialEq)]
pub struct Request {
    /// The asking adapter's id: its answers go to its own response channel.
    pub uid: String,
    pub request_id: Option<String>,
    pub ask: Ask,
}

/// What a request asks, by its `type`.
#[derive(Debug, PartialEq)]
pub enum Ask {
    /// 0: the ids of the sockets in these rooms (every socket when empty).
    SocketIds(Audience),
    /// 1: every room with a socket.
    AllRooms,
    /// 2, 3, 4 with `opts`: the sockets of an audience join, leave, or are disconnected.
    Rooms(RoomOp),
    /// 2, 3, 4 by `sid` (the older adapters' form): that one socket, answered by its holder.
    OneSocket { sid: String, action: RoomAction },
    /// 5: the sockets of an audience, described.
    Fetch(Audience),
    /// 6: an event for the servers' handlers.
    ServerSideEmit,
    /// 7: an event for the clients of an audience, whose acknowledgements go back.
    BroadcastWithAck { event: String, args: Vec<Mp>, audience: Audience, timeout: Duration },
    /// A type this version does not know (a newer adapter's): left alone.
    Unknown(i64),
}

/// Reads a request.
pub fn request(payload: &[u8]) -> Result<Request, String> {
    let value: Mp = if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?
    } else {
        rmpv::decode::read_value(&mut &payload[..]).map_err(|e| format!("not msgpack: {e}"))?
    };
    let text = |key: &str| field(&value, key).and_then(Mp::as_str).map(str::to_owned);
    let kind = field(&value, "type").and_then(Mp::as_i64).ok_or("a request without a `type`")?;
    let audience = |opts: Option<&Mp>| {
        Audience::from_names(
            &strings(opts.and_then(|o| field(o, "rooms"))),
            &strings(opts.and_then(|o| field(o, "except"))),
        )
    };
    let opts = field(&value, "opts");
    let ask = match kind {
        0 => Ask::SocketIds(Audience::from_names(&strings(field(&value, "rooms")), &[])),
        1 => Ask::AllRooms,
        2..=4 if opts.is_none() => {
            let sid =
                text("sid").ok_or_else(|| format!("request type {kind} names no connections (no `opts`, no `sid`)"))?;
            let room = || strings(Some(&Mp::Array(field(&value, "room").into_iter().cloned().collect())));
            let action = match kind {
                2 => RoomAction::Join(room()),
                3 => RoomAction::Leave(room()),
                _ => RoomAction::Disconnect,
            };
            Ask::OneSocket { sid, action }
        }
        2..=4 => Ask::Rooms(emitter::request(payload)?.ok_or("a room operation that applies to nobody")?),
        5 => Ask::Fetch(audience(opts)),
        6 => Ask::ServerSideEmit,
        7 => {
            let packet = field(&value, "packet").ok_or("a broadcast without a packet")?;
            let data = field(packet, "data").and_then(Mp::as_array).ok_or("a broadcast packet without data")?;
            let (event, args) = data.split_first().ok_or("a broadcast packet with empty data")?;
            let flags = opts.and_then(|o| field(o, "flags"));
            let timeout = flags.and_then(|f| field(f, "timeout")).and_then(Mp::as_u64).map(Duration::from_millis);
            Ask::BroadcastWithAck {
                event: event.as_str().ok_or("an event name that is not a string")?.to_owned(),
                args: args.to_vec(),
                audience: audience(opts),
                timeout: timeout.unwrap_or(DEFAULT_ACK_TIMEOUT),
            }
        }
        other => Ask::Unknown(other),
    };
    Ok(Request { uid: text("uid").unwrap_or_default(), request_id: text("requestId"), ask })
}

/// The answer a request is waiting for: `fields` with its `requestId` (JSON).
pub fn answer(request_id: &str, fields: Value) -> Vec<u8> {
    let mut answer = json!({ "requestId": request_id });
    if let (Some(answer), Value::Object(fields)) = (answer.as_object_mut(), fields) {
        answer.extend(fields);
    }
    answer.to_string().into_bytes()
}

/// The number of clients a broadcast with acknowledgements reached here (type 8).
pub fn client_count(request_id: &str, count: usize) -> Vec<u8> {
    answer(request_id, json!({"type": 8, "clientCount": count}))
}

/// One client's acknowledgement of a broadcast (type 9, msgpack: it may hold binary).
pub fn acknowledgement(request_id: &str, arg: Mp) -> Vec<u8> {
    let message = Mp::Map(vec![
        (Mp::from("type"), Mp::from(9)),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("packet"), arg),
    ]);
    encode(&message)
}

/// A publication as a Node server's broadcast from `uid`.
pub fn broadcast(uid: &str, publication: &Publication) -> Vec<u8> {
    let mut data = vec![Mp::from(publication.event.as_str())];
    match &publication.data {
        Payload::Json(value) => data.push(rmpv::ext::to_value(value).unwrap_or(Mp::Nil)),
        Payload::Emitted { args, .. } => data.extend(args.iter().cloned()),
    }
    let names = |names: Vec<String>| Mp::Array(names.into_iter().map(Mp::from).collect());
    let packet = Mp::Map(vec![
        (Mp::from("type"), Mp::from(2)),
        (Mp::from("data"), Mp::Array(data)),
        (Mp::from("nsp"), Mp::from("/")),
    ]);
    let opts = Mp::Map(vec![
        (Mp::from("rooms"), names(publication.audience.room_names())),
        (Mp::from("except"), names(publication.audience.except_names())),
        (Mp::from("flags"), Mp::Map(Vec::new())),
    ]);
    encode(&Mp::Array(vec![Mp::from(uid), packet, opts]))
}

/// A room operation as a Node server's request from `uid` (no answer expected).
pub fn room_request(uid: &str, op: &RoomOp) -> Vec<u8> {
    let opts = json!({"rooms": op.target.room_names(), "except": op.target.except_names()});
    let request = match &op.action {
        RoomAction::Join(rooms) => json!({"uid": uid, "type": 2, "opts": opts, "rooms": rooms}),
        RoomAction::Leave(rooms) => json!({"uid": uid, "type": 3, "opts": opts, "rooms": rooms}),
        // A revoked user's connections close outright; a disconnection leaves the namespace.
        RoomAction::Disconnect => json!({"uid": uid, "type": 4, "opts": opts, "close": false}),
        RoomAction::Revoke => json!({"uid": uid, "type": 4, "opts": opts, "close": true}),
    };
    request.to_string().into_bytes()
}

fn encode(value: &Mp) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, value).expect("writing to a Vec does not fail");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventName;
    use crate::publication::Source;
    use crate::rooms::Room;

    #[test]
    fn requests_read_as_node_servers_send_them() {
        let fetch = request(br#"{"uid":"AbC12x","requestId":"r1","type":5,"opts":{"rooms":["org:1"],"except":[7]}}"#);
        let fetch = fetch.unwrap();
        assert_eq!((fetch.uid.as_str(), fetch.request_id.as_deref()), ("AbC12x", Some("r1")));
        let Ask::Fetch(audience) = fetch.ask else { panic!("{:?}", fetch.ask) };
        assert_eq!((audience.room_names(), audience.except_names()), (vec!["org:1".into()], vec!["7".into()]));

        let legacy = request(br#"{"uid":"u","requestId":"r2","type":2,"sid":"s1","room":"org:2"}"#).unwrap();
        assert_eq!(legacy.ask, Ask::OneSocket { sid: "s1".into(), action: RoomAction::Join(vec!["org:2".into()]) });
        let disconnect = request(br#"{"uid":"u","requestId":"r3","type":4,"sid":"s1","close":true}"#).unwrap();
        assert_eq!(disconnect.ask, Ask::OneSocket { sid: "s1".into(), action: RoomAction::Disconnect });
        assert!(request(br#"{"type":4,"close":true}"#).unwrap_err().contains("names no connections"));
        assert_eq!(request(br#"{"uid":"u","type":42}"#).unwrap().ask, Ask::Unknown(42));
    }

    #[test]
    fn a_broadcast_with_acknowledgements_reads_from_msgpack() {
        let packet = Mp::Map(vec![
            (Mp::from("type"), Mp::from(2)),
            (Mp::from("data"), Mp::Array(vec![Mp::from("ask"), Mp::Binary(vec![1])])),
            (Mp::from("nsp"), Mp::from("/")),
        ]);
        let opts = Mp::Map(vec![
            (Mp::from("rooms"), Mp::Array(vec![])),
            (Mp::from("except"), Mp::Array(vec![])),
            (Mp::from("flags"), Mp::Map(vec![(Mp::from("timeout"), Mp::from(1500))])),
        ]);
        let message = Mp::Map(vec![
            (Mp::from("uid"), Mp::from("AbC12x")),
            (Mp::from("requestId"), Mp::from("r4")),
            (Mp::from("type"), Mp::from(7)),
            (Mp::from("packet"), packet),
            (Mp::from("opts"), opts),
        ]);
        let read = request(&encode(&message)).unwrap();
        let Ask::BroadcastWithAck { event, args, audience, timeout } = read.ask else { panic!() };
        assert_eq!((event.as_str(), args, audience.everyone), ("ask", vec![Mp::Binary(vec![1])], true));
        assert_eq!(timeout, Duration::from_millis(1500));
    }

    #[test]
    fn a_publication_becomes_the_broadcast_node_servers_read() {
        let audience = Audience::except(vec![Room::org("1").unwrap()], vec![Room::user("2").unwrap()]);
        let event = EventName::parse("invoice:created").unwrap();
        let publication = Publication::new(event, audience, json!({"id": 5}), Source::Http);
        let bytes = broadcast("switchyard:i1", &publication);
        let read = emitter::decode_broadcast(&bytes).unwrap().unwrap();
        assert_eq!((read.uid.as_str(), read.event.as_str()), ("switchyard:i1", "invoice:created"));
        assert_eq!((read.rooms, read.except), (vec!["org:1".to_owned()], vec!["user:2".to_owned()]));
        let arguments: Vec<Value> = read.args.iter().filter_map(emitter::json).collect();
        assert_eq!(arguments, [json!({"id": 5})]);
    }

    #[test]
    fn answers_carry_the_request_id() {
        let answer: Value = serde_json::from_slice(&client_count("r5", 3)).unwrap();
        assert_eq!(answer, json!({"requestId": "r5", "type": 8, "clientCount": 3}));
        let ack = rmpv::decode::read_value(&mut &acknowledgement("r5", Mp::from("ok"))[..]).unwrap();
        assert_eq!(field(&ack, "packet"), Some(&Mp::from("ok")));
        let op = RoomOp { target: Audience::rooms(vec![Room::user("9").unwrap()]), action: RoomAction::Revoke };
        let request: Value = serde_json::from_slice(&room_request("switchyard:i1", &op)).unwrap();
        assert_eq!(
            request,
            json!({"uid": "switchyard:i1", "type": 4, "opts": {"rooms": ["user:9"], "except": []}, "close": true})
        );
    }
}
