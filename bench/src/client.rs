//! A Socket.IO client cut to what the benchmark needs, speaking the frames directly so that the
//! client is never the bottleneck: the Engine.IO v4 handshake over WebSocket, the namespace
//! connect with `{token}`, pong for every ping, and for each event a latency sample read from
//! the payload's `t` (microseconds since the generator started).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<TcpStream>;

/// The loopback source address of the `i`-th connection, `per_address` connections to each:
/// one address has about 28,000 ephemeral ports (32768–60999), so the generator spreads over
/// 127.0.0.3, 127.0.0.4, … and on into 127.0.1.x.
pub fn source_address(i: usize, per_address: usize) -> IpAddr {
    let slot = 2 + i / per_address;
    IpAddr::V4(Ipv4Addr::new(127, 0, (slot / 250) as u8, (slot % 250) as u8 + 1))
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the generator started: the clock publishers stamp and receivers read.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What one connection saw.
pub struct Tally {
    pub received: u64,
    pub latency: Histogram<u64>,
    /// Pings answered.
    pub pings: u64,
    /// Whether the server closed the connection before the generator stopped.
    pub closed: bool,
}

pub struct Connection {
    ws: Ws,
}

impl Connection {
    /// Connects from the loopback address `source` to the server at `addr` and joins the main
    /// namespace with `token`.
    pub async fn open(addr: &str, token: &str, source: IpAddr) -> anyhow::Result<Connection> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let server: SocketAddr = addr.parse().context("server address")?;
        let connect = async {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(false)?;
            socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("binding {source}"))?;
            let stream = socket.connect(server).await.context("tcp connect")?;
            stream.set_nodelay(true)?;
            let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
            anyhow::Ok(ws)
        };
        let mut ws = tokio::time::timeout(Duration::from_secs(30), connect)
            .await
            .context("websocket connect timed out")??;
        let open = next_text(&mut ws).await?;
        if !open.starts_with('0') {
            bail!("expected an Engine.IO open packet, got {open}");
        }
        ws.send(Message::text(format!("40{{\"token\":\"{token}\"}}"))).await?;
        loop {
            let frame = next_text(&mut ws).await?;
            if frame.starts_with("40") {
                return Ok(Connection { ws });
            }
            if frame.starts_with("44") {
                bail!("connection refused: {frame}");
            }
            if frame == "2" {
                ws.send(Message::text("3")).await?;
                continue;
            }
            bail!("connection refused: {frame}");
        }
    }

    /// Joins a public channel and waits (30 s at most) for the acknowledgement.
    pub async fn subscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(format!("421[\"subscribe\",{{\"channel\":\"{channel}\"}}]")))
            .await?;
        let acked = async {
            loop {
                let frame = next_text(&mut self.ws).await?;
                if frame == "2" {
                    self.ws.send(Message::text("3")).await?;
                } else if frame.starts_with("431") {
                    return anyhow::Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), acked)
            .await
            .context("no acknowledgement of `subscribe` within 30 s")?
    }

    /// Counts deliveries (also into `total`, shared by all connections) until `stop` turns
    /// true; answers pings meanwhile.
    pub async fn receive(mut self, mut stop: watch::Receiver<bool>, total: Arc<AtomicU64>) -> Tally {
        let mut tally = Tally {
            received: 0,
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
            pings: 0,
            closed: false,
        };
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                message = self.ws.next() => {
                    let Some(Ok(message)) = message else {
                        tally.closed = true;
                        break;
                    };
                    let Message::Text(text) = message else { continue };
                    let text = text.as_str();
                    if text == "2" {
                        if self.ws.send(Message::text("3")).await.is_ok() {
                            tally.pings += 1;
                        }
                    } else if text.starts_with("42") {
                        // Only the benchmark's own (stamped) events count; presence
                        // announcements and the like are not deliveries of the load.
                        if let Some(sent) = stamp(text) {
                            tally.received += 1;
                            total.fetch_add(1, Ordering::Relaxed);
                            let _ = tally.latency.record(now_us().saturating_sub(sent).max(1));
                        }
                    }
                }
            }
        }
        let _ = self.ws.close(None).await;
        tally
    }

}

/// The `"t":<micros>` stamp of an event frame, without parsing the whole JSON.
fn stamp(frame: &str) -> Option<u64> {
    let at = frame.find("\"t\":")? + 4;
    let digits: String = frame[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no frame within 30 s")?
            .context("connection closed")??;
        if let Message::Text(t) = message {
            return Ok(t.to_string());
        }
    }
}

/// An HS256 token both servers accept. It names no organization or tenant, so Switchyard's
/// presence announcements (which the Node reference does not make) stay out of the load.
pub fn token(sub: &str) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "exp": 4_102_444_800u64,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(super::servers::SECRET.as_bytes()),
    )
    .expect("signable")
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_read_from_event_frames() {
        assert_eq!(super::stamp(r#"42["invoice:created",{"n":1,"t":12345}]"#), Some(12345));
        assert_eq!(super::stamp(r#"42["x",{}]"#), None);
    }
}
