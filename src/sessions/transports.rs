//! The TCP connections this server accepted, by peer address, so that one of them can be cut:
//! a Socket.IO session's WebSocket when its client stopped reading, or every connection during
//! a drain. socketioxide has no call that closes one socket's transport (its `disconnect` is a
//! namespace DISCONNECT, on which clients do not reconnect, and it fails while the socket's
//! queue is full); shutting the connection down makes engineioxide end the session as a
//! transport close, and the client reconnect.
//!
//! The listener wrapper [`Accepting`] registers each connection and stops accepting when told
//! (the first step of a drain: the port closes, the load balancer sends new clients elsewhere).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Transports {
    /// Each open connection's descriptor. A connection leaves the map before its descriptor is
    /// closed (see [`Registered`]'s drop), and a cut holds the lock: a cut never reaches a
    /// descriptor that was reused.
    open: Mutex<HashMap<SocketAddr, RawFd>>,
}

impl Transports {
    fn register<I: AsRawFd>(self: &Arc<Self>, io: I, peer: SocketAddr) -> Registered<I> {
        self.open.lock().unwrap().insert(peer, io.as_raw_fd());
        Registered { io, peer, transports: self.clone() }
    }

    /// Shuts down the connection from `peer` (both directions: what was already written still
    /// reaches the client, then it reads the end). False when no such connection is open.
    pub fn cut(&self, peer: SocketAddr) -> bool {
        let open = self.open.lock().unwrap();
        let Some(&fd) = open.get(&peer) else { return false };
        // SAFETY: `fd` belongs to a live `Registered` (it leaves the map, under this lock, before
        // its descriptor closes); shutdown neither closes nor frees it.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) == 0 }
    }
}

/// An accepted connection, registered while it is open.
pub struct Registered<I> {
    io: I,
    peer: SocketAddr,
    transports: Arc<Transports>,
}

impl<I> Drop for Registered<I> {
    fn drop(&mut self) {
        // Before `io` (a field, dropped after this) closes the descriptor.
        self.transports.open.lock().unwrap().remove(&self.peer);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Registered<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Registered<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A listener whose connections are registered in [`Transports`], and which stops accepting
/// (and lets go of its socket, closing the port) once `stop` is cancelled, then cancels
/// `closed`.
pub struct Accepting<L> {
    inner: Option<L>,
    local: SocketAddr,
    transports: Arc<Transports>,
    stop: CancellationToken,
    closed: CancellationToken,
}

impl<L: axum::serve::Listener<Addr = SocketAddr>> Accepting<L> {
    pub fn new(
        inner: L,
        transports: Arc<Transports>,
        stop: CancellationToken,
        closed: CancellationToken,
    ) -> io::Result<Accepting<L>> {
        Ok(Accepting { local: inner.local_addr()?, inner: Some(inner), transports, stop, closed })
    }
}

impl<L> axum::serve::Listener for Accepting<L>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsRawFd,
{
    type Io = Registered<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        if let Some(inner) = self.inner.as_mut() {
            tokio::select! {
                (io, peer) = inner.accept() => return (self.transports.register(io, peer), peer),
                _ = self.stop.cancelled() => {}
            }
            self.inner = None;
            self.closed.cancel();
            tracing::info!("stopped accepting connections");
        }
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
