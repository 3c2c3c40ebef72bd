//! Engine.IO framing over WebSocket, fuzzed: random sequences of WebSocket frames at
//! `/socket.io/` (text and binary, fragmented at random, continuation frames out of place, pings
//! and pongs between fragments, frames and messages over `MAX_PAYLOAD`), carrying Engine.IO and
//! Socket.IO packets or bytes that are neither, with or without a namespace CONNECT first. Every
//! sequence ends in an answer or a close; a client connected beside them receives each
//! publication exactly once; no server code panics. (`garbage.rs` throws hand-picked garbage at
//! every door; this covers what a WebSocket can carry to the Socket.IO endpoint.)

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::helpers::{BARRIER, spawn_app_with, user_token};

/// Bytes of one message the server accepts in this test.
const MAX_PAYLOAD: usize = 16 * 1024;
const CASES: u32 = 256;

/// One frame to send: its kind, whether it ends its message, what it carries.
#[derive(Debug, Clone)]
struct RawFrame {
    opcode: OpCode,
    fin: bool,
    payload: Vec<u8>,
}

/// What a frame carries: an Engine.IO / Socket.IO packet's start followed by JSON-ish or random
/// bytes, or random bytes alone; small, near the limit, or over it.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(""),
        Just("4"),
        Just("40"),
        Just("42"),
        Just("421"),
        Just("43"),
        Just("451-"),
        Just("452-[\"e\",{\"_placeholder\":true,\"num\":0}]"),
        Just("2"),
        Just("3"),
        Just("5"),
        Just("6"),
        Just("1"),
        Just("41"),
        Just("4999999999999999999999"),
    ];
    let body = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        2 => "[\\[\\]{}\",:a-z0-9 ]{0,64}".prop_map(String::into_bytes),
        1 => (1..3 * MAX_PAYLOAD).prop_map(|n| vec![b'a'; n]),
    ];
    (prefix, body).prop_map(|(prefix, body)| [prefix.as_bytes(), &body].concat())
}

fn frame() -> impl Strategy<Value = RawFrame> {
    let opcode = prop_oneof![
        6 => Just(OpCode::Data(Data::Text)),
        2 => Just(OpCode::Data(Data::Binary)),
        4 => Just(OpCode::Data(Data::Continue)),
        1 => Just(OpCode::Control(tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Ping)),
        1 => Just(OpCode::Control(tokio_tungstenite::tungstenite::protocol::frame::coding::Control::Pong)),
    ];
    (opcode, any::<bool>(), payload()).prop_map(|(opcode, fin, payload)| {
        // Control frames are never fragmented and carry at most 125 bytes.
        let control = matches!(opcode, OpCode::Control(_));
        let payload = if control { payload.into_iter().take(125).collect() } else { payload };
        RawFrame { opcode, fin: fin || control, payload }
    })
}

/// A sequence: maybe a namespace CONNECT with a valid token first, then the frames.
fn sequence() -> impl Strategy<Value = (bool, Vec<RawFrame>)> {
    (any::<bool>(), proptest::collection::vec(frame(), 1..10))
}

/// Sends one sequence on a fresh Engine.IO WebSocket and waits until the server closes it or
/// goes quiet.
async fn send(addr: std::net::SocketAddr, token: &str, connect: bool, frames: &[RawFrame]) {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("the upgrade is accepted");
    // The Engine.IO open packet.
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    if connect && ws.send(Message::text(format!("40{}", json!({"token": token})))).await.is_err() {
        return;
    }
    for raw in frames {
        let header = FrameHeader { opcode: raw.opcode, is_final: raw.fin, ..FrameHeader::default() };
        let frame = Frame::from_payload(header, raw.payload.clone().into());
        if ws.send(Message::Frame(frame)).await.is_err() {
            return;
        }
    }
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await {}
}

#[tokio::test]
async fn random_websocket_framing_at_the_socket_io_endpoint_never_disturbs_anyone_else() {
    crate::garbage::count_server_panics();
    let panics_before = crate::garbage::server_panics();
    let max = MAX_PAYLOAD.to_string();
    let app = spawn_app_with(&[("MAX_PAYLOAD", &max), ("CLIENT_EVENT_RATE", "1000")]).await;
    let mut watcher = app.connect(&user_token("frames-watcher", Some("frames-org"), None)).await;
    let token = user_token("frames-fuzzer", Some("frames-org"), None);
    let mut runner = TestRunner::new(Config { cases: CASES, ..Config::default() });
    for case in 0..CASES {
        let (connect, frames) = sequence().new_tree(&mut runner).expect("a case").current();
        let described = format!("case {case}: connect={connect} {:?}", summary(&frames));
        tokio::time::timeout(Duration::from_secs(20), send(app.addr, &token, connect, &frames))
            .await
            .unwrap_or_else(|_| panic!("the server neither answered nor closed: {described}"));
        if case % 16 == 15 {
            // Everyone else is served, exactly once, between the sequences.
            let n = case / 16;
            app.publish(json!({"event": "probe:frames", "to": {"user": "frames-watcher"}, "data": {"n": n}})).await;
            app.barrier().await;
            let events = watcher.events_before(BARRIER).await;
            let probes: Vec<_> = events.iter().filter(|(e, _)| e == "probe:frames").collect();
            assert_eq!(probes.len(), 1, "{described}: {events:?}");
            assert_eq!(probes[0].1, json!({"n": n}));
        }
    }
    assert_eq!(crate::garbage::server_panics(), panics_before, "server code panicked");
    app.stop().await;
}

/// Each frame as (opcode, fin, length): what a failure report needs to replay it by hand.
fn summary(frames: &[RawFrame]) -> Vec<(String, bool, usize)> {
    frames.iter().map(|f| (format!("{}", f.opcode), f.fin, f.payload.len())).collect()
}
