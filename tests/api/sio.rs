//! A minimal Socket.IO v5 / Engine.IO v4 client over WebSocket, enough to prove what a real
//! client sees: the handshake, `connect_error`, events, acks. (The real `socket.io-client` is
//! exercised in `client-test/`.)

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// How to open the connection: handshake auth payload, query parameters, extra headers.
#[derive(Debug, Default, Clone)]
pub struct ConnectOptions {
    pub auth: Option<Value>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl ConnectOptions {
    pub fn auth_token(token: &str) -> Self {
        ConnectOptions { auth: Some(serde_json::json!({ "token": token })), ..Default::default() }
    }
}

pub struct SioClient {
    ws: Ws,
    pub sid: String,
    pending: VecDeque<(String, Value)>,
    next_ack: u64,
}

/// What the server answered instead of connecting.
#[derive(Debug)]
pub struct ConnectError {
    pub message: String,
}

impl SioClient {
    pub async fn connect(addr: std::net::SocketAddr, options: ConnectOptions) -> Result<Self, ConnectError> {
        let mut url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        for (k, v) in &options.query {
            url.push_str(&format!("&{k}={}", urlencode(v)));
        }
        let mut request = url.into_client_request().unwrap();
        for (k, v) in &options.headers {
            request.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket upgrade");
        let open = next_text(&mut ws).await;
        assert!(open.starts_with('0'), "expected engine.io open packet, got {open}");
        let connect = match &options.auth {
            Some(auth) => format!("40{auth}"),
            None => "40".to_owned(),
        };
        ws.send(Message::text(connect)).await.unwrap();
        loop {
            let frame = next_text(&mut ws).await;
            if frame == "2" {
                ws.send(Message::text("3")).await.unwrap();
            } else if let Some(body) = frame.strip_prefix("40") {
                let v: Value = serde_json::from_str(body).unwrap();
                return Ok(SioClient {
                    ws,
                    sid: v["sid"].as_str().unwrap().to_owned(),
                    pending: VecDeque::new(),
                    next_ack: 1,
                });
            } else if let Some(body) = frame.strip_prefix("44") {
                let v: Value = serde_json::from_str(body).unwrap();
                return Err(ConnectError { message: v["message"].as_str().unwrap_or_default().to_owned() });
            } else {
                panic!("unexpected frame during connect: {frame}");
            }
        }
    }

    pub async fn emit(&mut self, event: &str, data: Value) {
        let packet = format!("42{}", serde_json::json!([event, data]));
        self.ws.send(Message::text(packet)).await.unwrap();
    }

    /// Emits with an ack callback and waits for the answer. Events received meanwhile are kept.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let packet = format!("42{id}{}", serde_json::json!([event, data]));
        self.ws.send(Message::text(packet)).await.unwrap();
        loop {
            match self.read_packet().await {
                Packet::Ack(ack_id, args) if ack_id == id => return args.into_iter().next().unwrap_or(Value::Null),
                Packet::Event(name, data) => self.pending.push_back((name, data)),
                other => panic!("unexpected packet while waiting for ack {id}: {other:?}"),
            }
        }
    }

    /// The next event; panics after a generous wait (a missing event is a failure).
    pub async fn next_event(&mut self) -> (String, Value) {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        match self.read_packet().await {
            Packet::Event(name, data) => (name, data),
            other => panic!("unexpected packet while waiting for an event: {other:?}"),
        }
    }

    /// Every event received before `barrier`. Used to prove exactly-once delivery: a test
    /// publishes, then publishes the barrier to the same sockets; whatever the first publication
    /// delivered to this socket arrived before the barrier, in order.
    pub async fn events_before(&mut self, barrier: &str) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        loop {
            let (name, data) = self.next_event().await;
            if name == barrier {
                return seen;
            }
            seen.push((name, data));
        }
    }

    /// Closes the connection as a browser tab would.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Waits for the server to close the connection; returns the close reason.
    pub async fn closed(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("server did not close") {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.reason.to_string()),
                Some(Ok(Message::Text(t))) if t.as_str() == "1" => return Some("engine.io close".into()),
                Some(Ok(Message::Text(t))) if t.as_str() == "41" => return Some("41".into()),
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn read_packet(&mut self) -> Packet {
        loop {
            let frame = next_text(&mut self.ws).await;
            if frame == "2" {
                self.ws.send(Message::text("3")).await.unwrap();
                continue;
            }
            return Packet::parse(&frame);
        }
    }
}

#[derive(Debug)]
enum Packet {
    Event(String, Value),
    Ack(u64, Vec<Value>),
    /// Shown in panic messages only.
    Other(#[allow(dead_code)] String),
}

impl Packet {
    fn parse(frame: &str) -> Packet {
        let Some(rest) = frame.strip_prefix('4') else {
            return Packet::Other(frame.to_owned());
        };
        let (kind, body) = rest.split_at(1);
        let digits = body.chars().take_while(char::is_ascii_digit).count();
        let (id, json) = body.split_at(digits);
        match kind {
            "2" => {
                let v: Vec<Value> = serde_json::from_str(json).unwrap();
                let mut it = v.into_iter();
                let name = it.next().unwrap().as_str().unwrap().to_owned();
                Packet::Event(name, it.next().unwrap_or(Value::Null))
            }
            "3" => Packet::Ack(id.parse().unwrap(), serde_json::from_str(json).unwrap()),
            _ => Packet::Other(frame.to_owned()),
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for the server")
            .expect("connection closed")
            .expect("websocket error");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Close(f) => panic!("server closed the connection: {f:?}"),
            _ => continue,
        }
    }
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
