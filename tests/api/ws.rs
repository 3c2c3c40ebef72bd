//! A plain WebSocket test client for `/ws` and `/api/ws`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: Option<u16>,
    pub reason: String,
}

impl WsClient {
    /// Connects to `path` (with its query string) on the test server.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, headers: &[(&str, String)]) -> WsClient {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("websocket upgrade");
        WsClient { ws }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws.send(Message::text(value.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next JSON frame; panics on close or after 10 s.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("websocket error");
            match message {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(f) => panic!("closed by the server: {f:?}"),
                _ => continue,
            }
        }
    }

    /// Sends a request and returns the next frame (the answer, on an otherwise quiet connection).
    pub async fn ask(&mut self, value: Value) -> Value {
        self.send(value).await;
        self.next().await
    }

    /// Frames received before a delivery of type `barrier`.
    pub async fn frames_before(&mut self, barrier: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let frame = self.next().await;
            if frame["type"] == barrier {
                return seen;
            }
            if frame["type"] != "user:status" {
                seen.push(frame);
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason (frames before it are
    /// skipped).
    pub async fn closed(&mut self) -> Closed {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("server did not close") {
                Some(Ok(Message::Close(frame))) => {
                    return Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    };
                }
                None | Some(Err(_)) => return Closed { code: None, reason: String::new() },
                Some(Ok(_)) => continue,
            }
        }
    }
}
