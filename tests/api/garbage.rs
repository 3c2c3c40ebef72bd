//! Garbage at every door: malformed Socket.IO packets (v4 over WebSocket, v3 over polling),
//! bogus binary attachment counts, deeply nested and oversized JSON, half-sent requests and
//! bytes that are not HTTP, at `/socket.io/`, `/ws`, `/api/ws` and the HTTP API. Each gets an
//! error or a clean close; a well-behaved client is served throughout; no server code panics.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{API_KEY, BARRIER, spawn_app_with, user_token};

/// Panics raised outside the tests' own code (server tasks, dependencies).
static SERVER_PANICS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn count_server_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().starts_with("tests/")) {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// How many server panics were counted so far (after [`count_server_panics`]).
pub(crate) fn server_panics() -> usize {
    SERVER_PANICS.load(Ordering::SeqCst)
}

/// Sends raw bytes, reads what comes back until the server closes or a second passes.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], close_early: bool) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    if close_early {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens a WebSocket at `path` and sends each frame; returns how the server ended it, if it did.
async fn ws_frames(addr: std::net::SocketAddr, path: &str, frames: Vec<Message>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.unwrap();
    for frame in frames {
        if ws.send(frame).await.is_err() {
            return;
        }
    }
    // Drain whatever the server says until it closes or goes quiet.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {}
}

#[tokio::test]
async fn garbage_at_every_door_gets_an_error_or_a_close_and_everyone_else_is_served() {
    count_server_panics();
    let app = spawn_app_with(&[("MAX_PAYLOAD", "65536")]).await;
    let addr = app.addr;
    let mut watcher = app.connect(&user_token("watcher", Some("g-org"), None)).await;
    let token = user_token("garbage", Some("g-org"), None);
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));

    // Not HTTP, half-sent requests, an absurd header.
    let answer = raw(addr, b"\x00\x01\x02 not http at all\r\n\r\n", false).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "not HTTP: {answer}");
    raw(addr, b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"event\":", true).await;
    let big_header =
        raw(addr, format!("GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)).as_bytes(), false)
            .await;
    assert!(big_header.is_empty() || big_header.starts_with("HTTP/1.1 4"), "a 200 KB header: {big_header}");

    // The HTTP API: deep JSON, invalid UTF-8, oversized.
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(app.url("/api/events"))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post(deep.clone().into_bytes()).await.unwrap().status(), 400);
    assert_eq!(post(vec![0xff, 0xfe, b'{']).await.unwrap().status(), 400);
    assert_eq!(post(vec![b' '; 200_000]).await.unwrap().status(), 413);

    // Socket.IO v4 over WebSocket: malformed packets after a valid connect.
    let sio = format!("/socket.io/?EIO=4&transport=websocket&token={token}");
    let packets = [
        "4".to_owned(),
        "42".to_owned(),
        "42[".to_owned(),
        "42[\"subscribe\"".to_owned(),
        "42{\"not\":\"an array\"}".to_owned(),
        "4299999999999999999999[\"x\"]".to_owned(),
        "451-[\"subscribe\",{\"_placeholder\":true,\"num\":99}]".to_owned(),
        "459999-[\"subscribe\",{}]".to_owned(),
        format!("42[\"subscribe\",{deep}]"),
        "47".to_owned(),
        "\u{0}\u{1}".to_owned(),
    ];
    for packet in packets {
        ws_frames(addr, &sio, vec![Message::text("40"), Message::text(packet)]).await;
    }
    ws_frames(addr, &sio, vec![Message::text("40"), Message::binary(vec![0xde, 0xad, 0xbe, 0xef])]).await;
    ws_frames(
        addr,
        &sio,
        vec![Message::text("40"), Message::text(format!("42[\"subscribe\",\"{}\"]", "x".repeat(100_000)))],
    )
    .await;

    // Socket.IO v3 over polling: a session, then garbage bodies.
    let open = http.get(app.url("/socket.io/?EIO=3&transport=polling")).send().await.unwrap().text().await.unwrap();
    if let Some(sid) = open.split("\"sid\":\"").nth(1).and_then(|s| s.split('"').next()) {
        for body in ["garbage", "5:4xxxx", "99999:42[]", "3:42[", "\u{0}"] {
            let url = app.url(&format!("/socket.io/?EIO=3&transport=polling&sid={sid}"));
            let _ = http.post(url).body(body).send().await.unwrap();
        }
    }

    // Plain WebSocket: garbage text, binary, deep JSON, oversized.
    for path in [format!("/ws?token={token}"), format!("/api/ws?token={token}"), "/ws?token=nope".to_owned()] {
        let frames = vec![
            Message::text("not json"),
            Message::binary(vec![1, 2, 3]),
            Message::text(deep.clone()),
            Message::text(json!({"type": "subscribe", "channel": {"x": 1}}).to_string()),
            Message::text(json!({"type": "subscribe", "channel": "venue:1", "since": [1]}).to_string()),
            Message::text(json!({"type": "refresh", "token": 5}).to_string()),
            Message::text("x".repeat(100_000)),
        ];
        ws_frames(addr, &path, frames).await;
    }

    // Through all of it, the well-behaved client is served, once.
    app.publish(json!({"event": "still:here", "to": {"org": "g-org"}, "data": {}})).await;
    app.barrier().await;
    let seen = watcher.events_before(BARRIER).await;
    assert_eq!(seen.iter().filter(|(name, _)| name == "still:here").count(), 1);
    assert_eq!(SERVER_PANICS.load(Ordering::SeqCst), 0, "a panic outside the tests (see the output above)");
    app.stop().await;
}
