//! The HTTP server loop: accepts connections and serves each over HTTP/1.1 with hyper, under
//! the limits that keep one anonymous peer from holding the server's descriptors.
//!
//! `axum::serve` runs hyper without a timer, so hyper's header read timeout never fires: a peer
//! that sends half a request head (or nothing) held its connection forever, and ~1,100 of them
//! from one address used up the descriptors. Here each connection is served by hyper's own
//! HTTP/1.1 connection with a timer:
//! - **a request head** must arrive whole within `REQUEST_HEADER_TIMEOUT`, counted from the
//!   moment the server starts waiting for it: on a new connection before its first byte, and on
//!   a kept-alive one after its previous answer (so an idle keep-alive connection closes then
//!   too);
//! - **a request body** must arrive whole within `REQUEST_BODY_TIMEOUT` of its head (a total
//!   deadline, not an idle one: a byte every few seconds does not extend it; tower-http's
//!   `TimeoutBody` restarts at each frame, so it would);
//! - **connections that have not sent a request head yet** are counted per client address and
//!   capped (`MAX_PENDING_CONNECTIONS_PER_ADDRESS`): one over it is closed at once. A real
//!   client sends its head right after connecting, so it is pending for a round trip; the cap is
//!   what keeps a slow-head flood from one address away from everyone else's descriptors.
//!   Trusted proxies (`TRUSTED_PROXIES`) are not capped: every client behind one shares its
//!   address, and a proxy reads request heads itself before it forwards them.
//!
//! WebSocket upgrades leave hyper once their head is read; the heartbeat (Engine.IO's ping, the
//! `/ws` ping) watches them from then on. Each refusal counts in
//! `switchyard_refused_total{reason}`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{Metrics, Refusal};

/// The limits on requests not yet read whole.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// `REQUEST_HEADER_TIMEOUT`.
    pub header_timeout: Duration,
    /// `REQUEST_BODY_TIMEOUT`.
    pub body_timeout: Duration,
    /// `MAX_PENDING_CONNECTIONS_PER_ADDRESS`.
    pub pending_per_address: usize,
    /// Peers not capped: the trusted proxies.
    pub uncapped: Vec<IpNet>,
}

/// Serves `router` on the connections `listener` accepts until `signal` resolves; then stops
/// accepting, lets each connection finish its request in flight, and returns once all are done.
/// Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: RequestLimits,
    metrics: Arc<Metrics>,
    signal: impl Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let limits = Arc::new(limits);
    let pending = Arc::new(Pending::default());
    let (stop, stopping) = watch::channel(false);
    let connections = TaskTracker::new();
    let mut signal = pin!(signal);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut signal => break,
        };
        let Some(mark) = pending.enter(peer.ip(), &limits) else {
            metrics.refused(Refusal::PendingConnections);
            tracing::debug!(%peer, "connection refused: too many pending connections from this address");
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            peer,
            limits: limits.clone(),
            metrics: metrics.clone(),
            mark: Arc::new(Mutex::new(mark)),
        };
        let mut stopping = stopping.clone();
        connections.spawn(async move { connection.serve(io, &mut stopping).await });
    }
    drop(listener);
    let _ = stop.send(true);
    connections.close();
    connections.wait().await;
}

/// One accepted connection.
struct Connection {
    router: Router,
    peer: SocketAddr,
    limits: Arc<RequestLimits>,
    metrics: Arc<Metrics>,
    /// Held until the first request head arrives.
    mark: Arc<Mutex<PendingMark>>,
}

impl Connection {
    async fn serve<I>(self, io: I, stopping: &mut watch::Receiver<bool>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { router, peer, limits, metrics, mark } = self;
        let body_timeout = limits.body_timeout;
        let counting = metrics.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            mark.lock().unwrap().take();
            request.extensions_mut().insert(ConnectInfo(peer));
            let request =
                request.map(|body| axum::body::Body::new(Deadline::new(body, body_timeout, counting.clone())));
            router.clone().oneshot(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
        let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
        let mut connection = pin!(connection);
        let mut stopped = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        if e.is_timeout() {
                            metrics.refused(Refusal::HeaderTimeout);
                            tracing::debug!(%peer, "connection closed: no whole request head within REQUEST_HEADER_TIMEOUT");
                        } else {
                            tracing::trace!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                    return;
                }
                changed = stopping.changed(), if !stopped => {
                    if changed.is_err() || *stopping.borrow() {
                        stopped = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// Connections that have not sent a request head yet, per client address.
#[derive(Default)]
struct Pending {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One pending connection, counted out when dropped (its first request head arrived, or it
/// closed). `None` for an uncapped peer.
type PendingMark = Option<PendingGuard>;

struct PendingGuard {
    pending: Arc<Pending>,
    address: IpAddr,
}

impl Pending {
    /// Counts a connection from `address` in, or refuses it over the cap.
    fn enter(self: &Arc<Self>, address: IpAddr, limits: &RequestLimits) -> Option<PendingMark> {
        let address = address.to_canonical();
        if limits.uncapped.iter().any(|net| net.contains(&address)) {
            return Some(None);
        }
        let mut counts = self.by_address.lock().unwrap();
        let count = counts.entry(address).or_default();
        if *count >= limits.pending_per_address {
            return None;
        }
        *count += 1;
        Some(Some(PendingGuard { pending: self.clone(), address }))
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut counts = self.pending.by_address.lock().unwrap();
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A request body that fails once its deadline passes before its end.
struct Deadline {
    body: Incoming,
    /// Armed when the handler first reads (a handler that never reads the body sets no timer),
    /// right after the head in practice.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Deadline {
    fn new(body: Incoming, timeout: Duration, metrics: Arc<Metrics>) -> Deadline {
        Deadline { body, sleep: None, timeout, metrics }
    }
}

/// A request body not read whole within `REQUEST_BODY_TIMEOUT`.
#[derive(Debug, thiserror::Error)]
#[error("body_timeout: the request body did not arrive within REQUEST_BODY_TIMEOUT")]
pub struct BodyTimeout;

impl Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.metrics.refused(Refusal::BodyTimeout);
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
