//! Property tests over every parser Switchyard owns: whatever the input, each answers with a
//! value or an error, never a panic, and what it writes it reads back. (The network side of the
//! same promise is `garbage.rs`.)

use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard::bridge::emitter;
use switchyard::catalogue::Catalogue;
use switchyard::cluster::deliver::decode_body;
use switchyard::event::EventName;
use switchyard::history::Since;
use switchyard::id::LooseId;
use switchyard::invitations::InvitationUpdate;
use switchyard::notifications::Recipient;
use switchyard::publication::Source;
use switchyard::publish::PublishRequest;
use switchyard::recovery::{Cursor, Position};
use switchyard::rooms::{ChannelPattern, Room, public_channel};

/// JSON values a few levels deep, with the field names the parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z:_{} 0-9-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("event".to_owned()),
            Just("to".to_owned()),
            Just("data".to_owned()),
            Just("except".to_owned()),
            Just("user".to_owned()),
            Just("org".to_owned()),
            Just("tenant".to_owned()),
            Just("project".to_owned()),
            Just("channel".to_owned()),
            Just("rooms".to_owned()),
            Just("all".to_owned()),
            Just("invitationId".to_owned()),
            Just("status".to_owned()),
            Just("userId".to_owned()),
            Just("organizationId".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn room_names_parse_or_refuse_and_read_back(name in ".{0,300}") {
        if let Ok(room) = Room::parse(&name) {
            prop_assert_eq!(Room::parse(&room.name()), Ok(room));
        }
        let _ = public_channel(&ChannelPattern::defaults(), &name);
        let _ = ChannelPattern::parse(&name);
        let _ = EventName::parse(&name);
    }

    #[test]
    fn cursors_positions_and_since_parse_or_refuse(text in ".{0,80}", ms in any::<u64>(), seq in any::<u64>()) {
        let _ = (Cursor::parse(&text), Position::parse(&text), Since::parse(&text));
        let position = Position::new(ms, seq);
        prop_assert_eq!(Position::parse(&position.to_string()), Some(position));
    }

    #[test]
    fn publish_requests_and_contract_bodies_parse_or_refuse(value in json_value()) {
        let catalogue = Catalogue::builtin();
        if let Ok(request) = serde_json::from_value::<PublishRequest>(value.clone()) {
            let _ = request.into_publication(&catalogue, true, Source::Http);
        }
        let _ = serde_json::from_value::<InvitationUpdate>(value.clone());
        let _ = serde_json::from_value::<LooseId>(value.clone());
        let _ = Recipient::of(&value);
        let _ = decode_body(value.to_string().as_bytes());
    }

    #[test]
    fn emitter_messages_parse_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = emitter::broadcast(&bytes);
        let _ = emitter::request(&bytes);
        let _ = decode_body(&bytes);
    }

    #[test]
    fn emitter_msgpack_of_any_shape_parses_or_refuses(value in json_value()) {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &rmpv::ext::to_value(&value).unwrap()).unwrap();
        let _ = emitter::broadcast(&bytes);
        let wrapped = rmpv::ext::to_value(json!(["uid", {"type": 2, "data": ["ev", value.clone()], "nsp": "/"}, {"rooms": value}])).unwrap();
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &wrapped).unwrap();
        let _ = emitter::broadcast(&bytes);
        let _ = emitter::request(value.to_string().as_bytes());
    }
}
