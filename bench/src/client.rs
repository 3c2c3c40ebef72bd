//! A Socket.IO client cut to what the benchmark needs, speaking the frames directly so that the
//! client is never the bottleneck: the Engine.IO v4 handshake over WebSocket, the namespace
//! connect with `{token}`, pong for every ping, and for each event two latency samples against
//! the payload's `t` (microseconds of the system clock at publish): when the frame *arrived*
//! (the kernel's receive timestamp, `SO_TIMESTAMPNS`), and when the generator *read* it. One
//! core reading 2,000 sockets in turn reads the last frame of a fan-out milliseconds after it
//! arrived; a real client, alone on its socket, reads it on arrival.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{self, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<Stamped>;

/// The loopback source address of the `i`-th connection, `per_address` connections to each:
/// one address has about 28,000 ephemeral ports (32768–60999), so the generator spreads over
/// 127.0.0.3, 127.0.0.4, … and on into 127.0.1.x.
pub fn source_address(i: usize, per_address: usize) -> IpAddr {
    let slot = 2 + i / per_address;
    IpAddr::V4(Ipv4Addr::new(127, 0, (slot / 250) as u8, (slot % 250) as u8 + 1))
}

/// Microseconds of the system clock: what publishers stamp, and the clock of the kernel's
/// receive timestamps.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What one connection saw.
pub struct Tally {
    pub received: u64,
    /// Publish → arrival at the client's socket, microseconds, one per delivery (a
    /// histogram per connection would take ~170 KB each; the summing side keeps one).
    pub latency: Vec<u64>,
    /// Publish → read by the generator, microseconds.
    pub read_latency: Vec<u64>,
    /// Pings answered.
    pub pings: u64,
    /// Whether the server closed the connection before the generator stopped.
    pub closed: bool,
}

pub struct Connection {
    ws: Ws,
}

/// A TCP connection to the server at `addr` from the loopback address `source` (so one run can
/// hold more connections than one address has ports), Nagle off as the servers have it.
pub async fn connect_from(source: IpAddr, addr: &str) -> anyhow::Result<TcpStream> {
    let server: SocketAddr = addr.parse().context("server address")?;
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(false)?;
    socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("binding {source}"))?;
    let stream = socket.connect(server).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The WebSocket handshake over `stream`, with a read buffer sized to the frames the benchmark
/// reads. tungstenite zero-fills its whole free read buffer before every read (128 KiB by
/// default): with the default, the generator spent 58% of its core in `memset` reading a
/// fan-out, one frame per read, and capped the deliveries it could count at ~300k/s.
pub async fn handshake<S>(url: String, stream: S) -> anyhow::Result<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// Bytes read per `recv`: dozens of the benchmark's frames (each well under 1 KiB).
const READ_BUFFER: usize = 8 * 1024;

impl Connection {
    /// Connects from the loopback address `source` to the server at `addr` and joins the main
    /// namespace with `token`.
    pub async fn open(addr: &str, token: &str, source: IpAddr) -> anyhow::Result<Connection> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let connect = async {
            let stream = connect_from(source, addr).await?;
            handshake(url, Stamped::new(stream)?).await
        };
        let mut ws =
            tokio::time::timeout(Duration::from_secs(30), connect).await.context("websocket connect timed out")??;
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

    /// Closes with a WebSocket close frame, as a browser tab does.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Drops the TCP connection without a goodbye, as a lost network does.
    pub fn abandon(self) {}

    /// Joins a public channel and waits (30 s at most) for the acknowledgement.
    pub async fn subscribe(&mut self, channel: &str) -> anyhow::Result<()> {
        self.subscribe_with(&serde_json::json!({ "channel": channel })).await
    }

    /// `subscribe` with the whole payload (a channel and a filter, say); waits (30 s at most)
    /// for the acknowledgement.
    pub async fn subscribe_with(&mut self, payload: &serde_json::Value) -> anyhow::Result<()> {
        self.ws.send(Message::text(format!("421[\"subscribe\",{payload}]"))).await?;
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
        let mut tally = Tally { received: 0, latency: Vec::new(), read_latency: Vec::new(), pings: 0, closed: false };
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
                            let read = now_us();
                            let arrived = self.ws.get_ref().arrived_us.unwrap_or(read);
                            tally.received += 1;
                            total.fetch_add(1, Ordering::Relaxed);
                            tally.latency.push(arrived.saturating_sub(sent).max(1));
                            tally.read_latency.push(read.saturating_sub(sent).max(1));
                        }
                    }
                }
            }
        }
        let _ = self.ws.close(None).await;
        tally
    }
}

/// A TCP stream that remembers when the kernel received the data of its latest read.
pub struct Stamped {
    inner: TcpStream,
    /// System-clock microseconds at which the last segment of the latest read arrived.
    arrived_us: Option<u64>,
}

impl Stamped {
    fn new(inner: TcpStream) -> io::Result<Stamped> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option value of the right size.
        let set = unsafe {
            libc::setsockopt(
                inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Stamped { inner, arrived_us: None })
    }
}

/// `recvmsg` into `buf`, with the receive timestamp from the control message.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: fd is an open socket and msg describes live buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut arrived = None;
    // SAFETY: walks the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let at: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrived = Some(at.tv_sec as u64 * 1_000_000 + at.tv_nsec as u64 / 1_000);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, arrived))
}

impl AsyncRead for Stamped {
    fn poll_read(self: Pin<&mut Self>, cx: &mut task::Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let fd = this.inner.as_raw_fd();
            let unfilled = buf.initialize_unfilled();
            match this.inner.try_io(Interest::READABLE, || recv_stamped(fd, unfilled)) {
                Ok((n, arrived)) => {
                    if arrived.is_some() {
                        this.arrived_us = arrived;
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(self: Pin<&mut Self>, cx: &mut task::Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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

/// Every connection of the run gets the next loopback source address slot, so a scenario never
/// waits on ports the previous one left in TIME_WAIT.
static NEXT_CONNECTION: AtomicUsize = AtomicUsize::new(0);
static PER_SOURCE: AtomicUsize = AtomicUsize::new(20_000);

/// How many connections share one loopback source address (each has 64k ports).
pub fn set_per_source(n: usize) {
    PER_SOURCE.store(n.max(1), Ordering::Relaxed);
}

/// The loopback source address of the run's next connection.
pub fn next_source() -> std::net::IpAddr {
    source_address(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed), PER_SOURCE.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_read_from_event_frames() {
        assert_eq!(super::stamp(r#"42["invoice:created",{"n":1,"t":12345}]"#), Some(12345));
        assert_eq!(super::stamp(r#"42["x",{}]"#), None);
    }
}
