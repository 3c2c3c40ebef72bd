//! Idle plain WebSocket connections: Switchyard's `/ws` against the Node `ws` reference
//! (`bench/node-reference/ws-server.js`), each on a fresh server. A connection counts once the
//! server has answered its `{"type":"ping"}` (so it was admitted, not refused after the
//! upgrade); the connections are then held, answering the servers' WebSocket pings, and the
//! server's memory is read at the end of the hold, after a ping round when the hold passes the
//! 25 s interval.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_from, handshake, next_source, token};
use crate::measure::{Measure, measure};
use crate::servers::Server;

pub const SCENARIO: &str = "idle plain WebSocket (Node: ws 8.18)";

/// Opens `n` plain WebSocket connections to `server`, holds them `hold` seconds, and reports the
/// server's memory per connection then; a connection closed by then counts as lost.
pub async fn idle(server: &Server, n: usize, hold: u64) -> anyhow::Result<Vec<Measure>> {
    let before = server.rss_kib();
    let (stop, _) = watch::channel(false);
    let opened: Vec<anyhow::Result<PlainConnection>> = stream::iter(0..n)
        .map(|i| PlainConnection::open(&server.addr, token(&format!("plain-{i}")), next_source()))
        .buffer_unordered(256)
        .collect()
        .await;
    let mut holders = Vec::with_capacity(n);
    for connection in opened {
        holders.push(tokio::spawn(connection?.hold(stop.subscribe())));
    }
    eprintln!("  {n} idle plain WebSocket connections open, holding {hold} s");
    tokio::time::sleep(Duration::from_secs(hold) + Duration::from_millis(500)).await;
    let at_end = server.rss_kib();
    let _ = stop.send(true);
    let mut open = 0usize;
    for holder in holders {
        open += usize::from(holder.await.unwrap_or(false));
    }
    let per_connection = at_end.saturating_sub(before) as f64 * 1024.0 / n.max(1) as f64;
    Ok(vec![measure(SCENARIO, "memory per connection", "bytes", false, per_connection, (n - open) as i64)])
}

struct PlainConnection {
    ws: WebSocketStream<TcpStream>,
}

impl PlainConnection {
    /// Connects from `source` to `/ws?token=…` and waits for the answer to a `ping` message.
    async fn open(addr: &str, token: String, source: IpAddr) -> anyhow::Result<PlainConnection> {
        let url = format!("ws://{addr}/ws?token={token}");
        let connect = async {
            let stream = connect_from(source, addr).await?;
            let mut ws = handshake(url, stream).await?;
            ws.send(Message::text(r#"{"type":"ping"}"#)).await?;
            while let Some(message) = ws.next().await {
                if let Message::Text(text) = message? {
                    if text.contains("\"pong\"") {
                        return anyhow::Ok(ws);
                    }
                    bail!("expected a pong, got {text}");
                }
            }
            bail!("closed before answering the ping")
        };
        let ws = tokio::time::timeout(Duration::from_secs(30), connect)
            .await
            .context("plain websocket connect timed out")??;
        Ok(PlainConnection { ws })
    }

    /// Reads (tungstenite answers the server's pings) until `stop`; whether it is still open.
    async fn hold(mut self, mut stop: watch::Receiver<bool>) -> bool {
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                message = self.ws.next() => match message {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = self.ws.close(None).await;
        true
    }
}
