//! HTTPS and WSS on the listening port, without a proxy in front (`TLS_CERT_FILE`,
//! `TLS_KEY_FILE`). The listener accepts TCP connections and runs each TLS handshake in a task
//! of its own, so a client that stalls its handshake never holds up anyone else's; finished
//! handshakes are handed to the HTTP server in the order they finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

use crate::config::Tls;

/// A handshake not finished in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the HTTP server to take them.
const WAITING: usize = 1024;

/// The server's TLS configuration from the certificate and key the settings read. Fails when the
/// key does not belong to the certificate (or is of a kind rustls cannot use).
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(|e| format!("TLS_KEY_FILE does not go with TLS_CERT_FILE: {e}"))?;
    // HTTP/1.1 only: WebSocket upgrades and Engine.IO long-polling both speak it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener whose connections speak TLS.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`; accepting stops when the listener is dropped.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (done, accepted) = mpsc::channel(WAITING);
        tokio::spawn(accept(tcp, TlsAcceptor::from(config), done));
        Ok(TlsListener { accepted, local })
    }
}

async fn accept(tcp: TcpListener, acceptor: TlsAcceptor, done: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = done.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small frames go out at once (see startup).
        let _ = stream.set_nodelay(true);
        let (acceptor, done) = (acceptor.clone(), done.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = done.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
