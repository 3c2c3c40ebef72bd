//! Engine.IO sessions and the connections that carry them.
//!
//! socketioxide names a Socket.IO socket by its Engine.IO session id, so whoever learns that id
//! (from a log, an admin screen, a backend's `to.socket`) could poll or upgrade into the session
//! and read its user's events; Node gave the two different ids in Socket.IO 3 for that reason.
//! Here a session is bound to the client address that opened it ([`guard`]): a request naming
//! it from anywhere else is refused as an unknown session. The client address is read behind
//! trusted proxies ([`peer`]). The accepted TCP connections are kept by peer ([`transports`])
//! so that one session's transport can be cut ([`Sessions::cut`]: a client that stopped
//! reading, a drain). Logs name a session by a [`digest`] of its id, never the id.

mod guard;
mod owners;
pub mod peer;
pub mod transports;

pub use guard::guard;
pub use peer::TrustedProxies;
pub use transports::{Accepting, Transports};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::ConnectInfo;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

use self::owners::Owners;

/// Where Socket.IO clients connect (socket.io-client's default path).
pub const SOCKET_IO_PATH: &str = "/socket.io";

pub struct Sessions {
    owners: Owners,
    transports: Arc<Transports>,
    proxies: TrustedProxies,
}

impl Sessions {
    pub fn new(proxies: TrustedProxies) -> Sessions {
        Sessions { owners: Owners::default(), transports: Arc::default(), proxies }
    }

    /// The accepted connections (for the listener that registers them).
    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }

    /// Cuts a socket's session so that its client reconnects: its WebSocket is shut down, or, on
    /// long-polling, its next request is refused. Says whether there was a transport to cut.
    pub fn cut(&self, socket: &SocketRef) -> bool {
        let upgraded = self.owners.cut(&socket.id.to_string());
        match socket.transport_type() {
            socketioxide::TransportType::Websocket => upgraded
                // Opened on a WebSocket: the handshake's connection is the transport.
                .or_else(|| socket.req_parts().extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
                .is_some_and(|peer| self.transports.cut(peer)),
            socketioxide::TransportType::Polling => true,
        }
    }

    /// Forgets the long-polling sessions that ended (a session opened more than `grace` ago that
    /// no namespace holds).
    pub fn sweep(&self, io: &SocketIo, grace: Duration) -> usize {
        let namespaces = io.nsps();
        self.owners
            .sweep(grace, |sid| sid.parse().is_ok_and(|sid| namespaces.iter().any(|ns| ns.get_socket(sid).is_some())))
    }
}

/// A short, one-way name for a session id, for logs: lines about one session can be matched up,
/// and the id cannot be read back (the key is random per process).
pub fn digest(sid: impl fmt::Display) -> Digest {
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    let mut hasher = KEY.get_or_init(std::hash::RandomState::new).build_hasher();
    hasher.write(sid.to_string().as_bytes());
    Digest(hasher.finish() as u32)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(u32);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_stable_short_and_does_not_show_the_id() {
        let sid = "lv_VI97HAXpY6yYWAAAC";
        assert_eq!(digest(sid), digest(sid));
        assert_ne!(digest(sid), digest("lv_VI97HAXpY6yYWAAAD"));
        let shown = digest(sid).to_string();
        assert_eq!(shown.len(), 8);
        assert!(!sid.contains(&shown));
    }
}
