//! A Socket.IO session serves only the client address that opened it: knowing a socket id is
//! not enough to poll, post or upgrade into someone else's session (from another address, or
//! behind a trusted proxy, as another client). The heartbeat and the namespace deadline follow
//! `PING_INTERVAL`, `PING_TIMEOUT` and `CONNECT_TIMEOUT`, at the settings the official protocol
//! suites run with.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, user_token};

const OWNER: &str = "127.0.0.1";
const STRANGER: &str = "127.0.0.2";
const WAIT: Duration = Duration::from_secs(10);

/// A long-polling Engine.IO v4 client, from one local address, with extra headers.
struct Polling {
    http: reqwest::Client,
    url: String,
    sid: String,
    headers: Vec<(String, String)>,
}

impl Polling {
    fn client(from: &str) -> reqwest::Client {
        reqwest::Client::builder().local_address(from.parse::<IpAddr>().unwrap()).build().unwrap()
    }

    /// Opens a session and joins the main namespace with `token`.
    async fn open(app: &TestApp, from: &str, headers: &[(&str, &str)], token: &str) -> Polling {
        let mut client = Polling {
            http: Polling::client(from),
            url: app.url("/socket.io/?EIO=4&transport=polling"),
            sid: String::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let (status, body) = client.get(&client.url.clone()).await;
        assert_eq!(status, 200, "{body}");
        let open: Value = serde_json::from_str(&body[1..]).unwrap();
        client.sid = open["sid"].as_str().unwrap().to_owned();
        assert_eq!(client.post(&format!("40{}", json!({ "token": token }))).await.0, 200);
        client.poll_until("40{").await;
        client
    }

    /// The same session id, from another address or with other headers.
    fn posing_as(&self, from: &str, headers: &[(&str, &str)]) -> Polling {
        Polling {
            http: Polling::client(from),
            url: self.url.clone(),
            sid: self.sid.clone(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn session_url(&self) -> String {
        format!("{}&sid={}", self.url, self.sid)
    }

    async fn get(&self, url: &str) -> (u16, String) {
        let mut request = self.http.get(url);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = tokio::time::timeout(WAIT, request.send()).await.expect("answered").unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn poll(&self) -> (u16, String) {
        self.get(&self.session_url()).await
    }

    async fn post(&self, body: &str) -> (u16, String) {
        let mut request = self.http.post(self.session_url()).body(body.to_owned());
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Polls until a payload holds `needle` (pings are answered on the way).
    async fn poll_until(&self, needle: &str) -> String {
        tokio::time::timeout(WAIT, async {
            loop {
                let (status, body) = self.poll().await;
                assert_eq!(status, 200, "{body}");
                if body.contains(needle) {
                    return body;
                }
                if body.split('\u{1e}').any(|packet| packet == "2") {
                    self.post("3").await;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{needle}` within {WAIT:?}"))
    }
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to the server's Socket.IO path, from a local address of our choosing.
async fn websocket_from(from: &str, addr: SocketAddr, query: &str) -> Result<Ws, u16> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/socket.io/?{query}");
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The next text frame, or None once the server closed the connection.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame or the end") {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

#[tokio::test]
async fn a_session_id_opens_nothing_from_another_address_and_still_serves_its_owner() {
    let app = spawn_app().await;
    let owner = Polling::open(&app, OWNER, &[], &user_token("victim", None, None)).await;
    let stranger = owner.posing_as(STRANGER, &[]);

    let (status, body) = stranger.poll().await;
    assert_eq!((status, body.as_str()), (400, r#"{"code":1,"message":"Session ID unknown"}"#));
    let subscribe = r#"420["subscribe",{"channel":"venue:1"}]"#;
    assert_eq!(stranger.post(subscribe).await.0, 400);
    let query = format!("EIO=4&transport=websocket&sid={}", owner.sid);
    assert_eq!(websocket_from(STRANGER, app.addr, &query).await.err(), Some(400));

    // The owner's session is untouched: it reads its own notification over polling...
    app.publish(json!({"event": "notification:new", "to": {"user": "victim"}, "data": {"n": 1}})).await;
    let body = owner.poll_until("notification:new").await;
    assert!(body.contains(r#"{"n":1}"#), "{body}");
    // ...then upgrades to a WebSocket and reads the next one there.
    let mut ws = websocket_from(OWNER, app.addr, &query).await.expect("the owner upgrades");
    send(&mut ws, "2probe").await;
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("3probe"));
    send(&mut ws, "5").await;
    app.publish(json!({"event": "notification:new", "to": {"user": "victim"}, "data": {"n": 2}})).await;
    let delivered = loop {
        let frame = next_text(&mut ws).await.expect("the session stays open");
        if frame.starts_with("42") {
            break frame;
        }
    };
    assert_eq!(delivered, r#"42["notification:new",{"n":2}]"#);
    // Once upgraded, the stranger cannot poll it either.
    assert_eq!(stranger.poll().await.0, 400);
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_owns_the_session() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", OWNER)]).await;
    let client = [("x-forwarded-for", "198.51.100.7")];
    let owner = Polling::open(&app, OWNER, &client, &user_token("victim", None, None)).await;

    // Another client behind the same proxy.
    let neighbour = owner.posing_as(OWNER, &[("x-forwarded-for", "203.0.113.9")]);
    assert_eq!(neighbour.poll().await.0, 400);
    // A peer that is no proxy cannot claim the owner's address.
    let forger = owner.posing_as(STRANGER, &client);
    assert_eq!(forger.poll().await.0, 400);

    app.publish(json!({"event": "notification:new", "to": {"user": "victim"}, "data": {"n": 1}})).await;
    owner.poll_until("notification:new").await;
    app.stop().await;
}

async fn timed_app() -> TestApp {
    spawn_app_with(&[("PING_INTERVAL", "300ms"), ("PING_TIMEOUT", "200ms"), ("CONNECT_TIMEOUT", "1s")]).await
}

#[tokio::test]
async fn the_handshake_announces_the_configured_heartbeat_in_both_protocol_versions() {
    let app = timed_app().await;
    for eio in [4, 3] {
        let url = app.url(&format!("/socket.io/?EIO={eio}&transport=polling"));
        let body = app.http.get(url).send().await.unwrap().text().await.unwrap();
        assert!(body.contains(r#""pingInterval":300,"pingTimeout":200"#), "EIO={eio}: {body}");
    }
    app.stop().await;
}

/// Opens an Engine.IO `eio` session on a WebSocket, its open packet read.
async fn opened(app: &TestApp, eio: u8) -> Ws {
    let mut ws = websocket_from(OWNER, app.addr, &format!("EIO={eio}&transport=websocket")).await.unwrap();
    assert!(next_text(&mut ws).await.unwrap().starts_with("0{"));
    ws
}

/// Opens a WebSocket session and joins the main namespace.
async fn joined(app: &TestApp, token: &str) -> Ws {
    let mut ws = opened(app, 4).await;
    send(&mut ws, &format!("40{}", json!({ "token": token }))).await;
    loop {
        let frame = next_text(&mut ws).await.expect("the namespace answer");
        if frame.starts_with("40{") {
            return ws;
        }
        assert_eq!(frame, "2", "only pings come before the namespace answer");
        send(&mut ws, "3").await;
    }
}

#[tokio::test]
async fn the_server_pings_at_the_interval_and_closes_a_client_that_does_not_answer() {
    let app = timed_app().await;
    let token = user_token("u1", None, None);

    // Answered: pings keep coming.
    let mut answering = joined(&app, &token).await;
    for _ in 0..3 {
        assert_eq!(next_text(&mut answering).await.as_deref(), Some("2"));
        send(&mut answering, "3").await;
    }

    // Unanswered: one ping, then the end.
    let mut silent = joined(&app, &token).await;
    assert_eq!(next_text(&mut silent).await.as_deref(), Some("2"));
    // Engine.IO's close packet, then the end.
    assert_eq!(next_text(&mut silent).await.as_deref(), Some("1"), "closed after the ping timeout");
    assert_eq!(next_text(&mut silent).await, None);
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_joins_no_namespace_is_closed_at_the_connect_timeout() {
    let app = timed_app().await;
    let mut ws = opened(&app, 4).await;
    // Pings answered, no namespace joined: the connect deadline ends it.
    loop {
        match next_text(&mut ws).await.as_deref() {
            Some("2") => send(&mut ws, "3").await,
            Some("1") | None => break,
            Some(other) => panic!("unexpected {other}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_v3_client_that_stops_pinging_is_closed() {
    let app = timed_app().await;
    let mut ws = opened(&app, 3).await;
    // Engine.IO 3: the client pings. One ping is answered...
    send(&mut ws, "2").await;
    let mut frames = Vec::new();
    while let Some(frame) = next_text(&mut ws).await {
        frames.push(frame);
    }
    // ...and without another, the connection ends.
    assert!(frames.contains(&"3".to_owned()), "{frames:?}");
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_that_writes_ports_two_clients_are_told_apart() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", OWNER)]).await;
    // Some cloud gateways write each hop with the client's port.
    let owner =
        Polling::open(&app, OWNER, &[("x-forwarded-for", "198.51.100.7:51000")], &user_token("victim", None, None))
            .await;

    for neighbour in ["198.51.100.8:51000", "[2001:db8::7]:51000"] {
        let posing = owner.posing_as(OWNER, &[("x-forwarded-for", neighbour)]);
        assert_eq!(posing.poll().await.0, 400, "{neighbour}");
    }
    let rfc_7239 = owner.posing_as(OWNER, &[("forwarded", r#"for="[2001:db8::7]:4711""#)]);
    assert_eq!(rfc_7239.poll().await.0, 400);

    // The same client from another port of his own is still himself.
    let owner_again = owner.posing_as(OWNER, &[("x-forwarded-for", "198.51.100.7:51001")]);
    app.publish(json!({"event": "notification:new", "to": {"user": "victim"}, "data": {"n": 1}})).await;
    owner_again.poll_until("notification:new").await;
    app.stop().await;
}
