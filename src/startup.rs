//! The application: binds its listener, connects and migrates the database, wires the state,
//! and runs until a shutdown future resolves. Tests start it exactly as `main` does, on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use http::HeaderValue;
use migration::MigratorTrait;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

use crate::admin::{self, Admin};
use crate::auth::TokenVerifier;
use crate::bridge::fleet::NodeMirror;
use crate::broker::{self, Cluster, Local};
use crate::catalogue::Catalogue;
use crate::config::{DEVELOPMENT_API_KEY, Settings};
use crate::history::History;
use crate::hub::Hub;
use crate::lifetime::Lifetimes;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::publish::{Parts, Publisher};
use crate::sessions::{self, Accepting, SOCKET_IO_PATH, Sessions, TrustedProxies};
use crate::state::{AppState, Instance};
use crate::{background, demo, http as api, rawws, realtime, serve, tls};

/// Packets a socket may have waiting to be written. socketioxide drops a packet for a socket
/// whose queue is full (the default of 128 lost deliveries under fan-out load); the queue's
/// memory is only taken while it holds packets.
const SOCKET_SEND_QUEUE: usize = 1024;
/// Initial read buffer of a Socket.IO WebSocket connection (tungstenite grows it for a larger
/// frame). Clients send small frames; engineioxide's 4 KiB was a tenth of an idle connection.
const WS_READ_BUFFER: usize = 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL: cannot connect: {0}")]
    Database(#[source] sea_orm::DbErr),
    #[error("database migration failed: {0}")]
    Migration(#[source] sea_orm::DbErr),
    #[error("REDIS_URL: cannot connect: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("TLS_CERT_FILE/TLS_KEY_FILE: {0}")]
    Tls(String),
    #[error("cannot listen on {addr} (HOST/PORT): {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

pub struct Application {
    listener: TcpListener,
    /// HTTPS and WSS, when a certificate is configured.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    router: Router,
    state: AppState,
    /// The cluster bus and its broker, when Redis is configured; its subscriber runs with the
    /// server.
    cluster: Option<Cluster>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        warn_about_development_defaults(&settings);
        let db = connect_database(&settings.database_url).await?;
        migration::Migrator::up(&db, None).await.map_err(StartupError::Migration)?;

        let tls = settings.operations.tls.as_ref().map(tls::server_config).transpose().map_err(StartupError::Tls)?;
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;

        let timing = settings.socketio_timing;
        let builder = SocketIo::builder()
            .req_path(SOCKET_IO_PATH)
            .ping_interval(timing.ping_interval)
            .ping_timeout(timing.ping_timeout)
            .connect_timeout(timing.connect_timeout)
            .max_payload(settings.max_payload as u64)
            // MAX_PAYLOAD bounds a WebSocket message (and each of its frames) as it bounds a
            // polling body: engineioxide's own bounds (64 MiB / 16 MiB) let eight anonymous
            // WebSockets make the server buffer half a gigabyte.
            .ws_max_message_size(settings.max_payload)
            .ws_max_frame_size(settings.max_payload)
            .max_buffer_size(SOCKET_SEND_QUEUE)
            .ws_read_buffer_size(WS_READ_BUFFER);
        let builder =
            if settings.msgpack { builder.with_parser(socketioxide::ParserConfig::msgpack()) } else { builder };
        let (socket_layer, io) = builder.build_layer();
        let settings = Arc::new(settings);
        let instance = Arc::new(Instance::new());
        let metrics = Arc::new(Metrics::new());
        let sessions = Arc::new(Sessions::new(TrustedProxies::new(settings.trusted_proxies.clone())));
        let hub = Arc::new(Hub::new(io.clone(), sessions.clone(), metrics.clone()));
        let history = Arc::new(History::start(db.clone(), settings.history.clone(), settings.channel_patterns.clone()));
        let local = Local::new(hub.clone(), history.clone(), metrics.clone());
        let connected = broker::connect(&settings, &instance.id, local.clone(), metrics.clone())
            .await
            .map_err(StartupError::Redis)?;
        let (broker, cluster) = (connected.broker, connected.cluster);
        let bus = cluster.as_ref().map(|c| c.bus.clone());
        let presence = Arc::new(Presence::new(broker.clone(), settings.presence_announce_interval));
        let publisher = Publisher::new(Parts {
            broker: broker.clone(),
            local,
            history: history.clone(),
            presence: presence.clone(),
            db: db.clone(),
            metrics: metrics.clone(),
            mirror: bus.clone().filter(|_| settings.node_fleet).map(|bus| Arc::new(NodeMirror::new(bus)) as _),
        });
        let admin = Arc::new(Admin::new(
            settings.operations.admin.clone(),
            io.clone(),
            bus,
            publisher.clone(),
            hub.clone(),
            &instance.id,
            instance.started,
            TrustedProxies::new(settings.trusted_proxies.clone()),
            metrics.clone(),
        ));
        let state = AppState {
            tokens: Arc::new(TokenVerifier::new(&settings.jwt)),
            publisher,
            broker,
            hub,
            history,
            shutdown: CancellationToken::new(),
            instance,
            catalogue: Arc::new(Catalogue::builtin()),
            presence,
            lifetimes: Arc::new(Lifetimes::new(settings.token_expiry_notice)),
            admin,
            settings: settings.clone(),
            db,
            metrics,
            sessions: sessions.clone(),
        };
        realtime::attach(&state, &io);
        admin::attach(&state.admin, &io);

        let router = api::router()
            .merge(rawws::router())
            .merge(demo::router())
            .with_state(state.clone())
            .layer(socket_layer)
            .layer(axum::middleware::from_fn_with_state(sessions, sessions::guard))
            .layer(axum::extract::DefaultBodyLimit::max(settings.max_payload))
            .layer(axum::middleware::map_request(detach_request_head))
            .layer(api::cors(&settings))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
                // The path only: a query string may carry a token.
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }));
        Ok(Application { listener, tls, router, state, cluster })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Starts the bridges and jobs and serves until `shutdown` resolves. Then it drains: stops
    /// accepting (the port closes), says not ready, keeps every opted-in session resumable, and
    /// closes the connections spread over `SHUTDOWN_DRAIN` while delivering to those still open
    /// (clients reconnect, to another instance if there is one); then stops the bridges and
    /// jobs and finishes in-flight requests.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = self.local_addr();
        let state = self.state.clone();
        let stop = state.shutdown.clone();
        let tasks = TaskTracker::new();
        background::spawn(&state, self.cluster, &tasks, &stop);
        tasks.close();

        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, instance = %state.instance.id, "listening");
        let transports = state.sessions.transports().clone();
        let (accepting, closed) = (CancellationToken::new(), CancellationToken::new());
        let (stop_accepting, port_closed) = (accepting.clone(), closed.clone());
        let graceful = async move {
            shutdown.await;
            let spread = state.settings.shutdown_drain;
            tracing::info!(drain = ?spread, "shutting down: draining connections");
            stop_accepting.cancel();
            port_closed.cancelled().await;
            state.instance.start_draining();
            realtime::recovery::release_all(&state).await;
            state.hub.drain(spread).await;
            stop.cancel();
            tasks.wait().await;
            // Again for the sockets the drain could not close (long-polling ones, refused at
            // their next request): their rooms may have changed since.
            realtime::recovery::release_all(&state).await;
            state.hub.close().await;
        };
        let settings = &self.state.settings;
        let limits = serve::RequestLimits {
            header_timeout: settings.requests.header_timeout,
            body_timeout: settings.requests.body_timeout,
            pending_per_address: settings.requests.pending_per_address,
            uncapped: settings.trusted_proxies.clone(),
        };
        let metrics = self.state.metrics.clone();
        match self.tls {
            Some(config) => {
                // Each handshake's connection already has TCP_NODELAY (see below).
                let listener = tls::TlsListener::new(self.listener, config)?;
                let listener = Accepting::new(listener, transports, accepting, closed)?;
                serve::serve(listener, self.router, limits, metrics, graceful).await;
            }
            None => {
                // Small frames go out at once: without TCP_NODELAY, Nagle's algorithm and
                // delayed ACKs hold some deliveries for 40 ms.
                let listener = self.listener.tap_io(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                });
                let listener = Accepting::new(listener, transports, accepting, closed)?;
                serve::serve(listener, self.router, limits, metrics, graceful).await;
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

pub async fn connect_database(url: &str) -> Result<DatabaseConnection, StartupError> {
    let mut options = ConnectOptions::new(url.to_owned());
    let sqlite = url.starts_with("sqlite:");
    options
        .max_connections(if sqlite { 8 } else { 16 })
        // SQLite's connections are a file each and cost nothing to keep: all open from the
        // start, so the process's descriptors and memory do not creep up as load first
        // reaches them (the soak counted them as growth).
        .min_connections(if sqlite { 8 } else { 0 })
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await.map_err(StartupError::Database)
}

fn warn_about_development_defaults(settings: &Settings) {
    if settings.jwt.using_development_secret {
        tracing::warn!(
            "!!! JWT_SECRET is not set: tokens are verified with the built-in DEVELOPMENT secret. \
             Anyone can mint tokens for this server. Set JWT_SECRET (or JWT_PUBLIC_KEY_FILE) \
             before exposing it; APP_ENV=production refuses to start without one. !!!"
        );
    }
    if settings.using_development_api_key {
        tracing::warn!(
            "!!! API_KEYS is not set: the server API accepts the DEVELOPMENT key `{DEVELOPMENT_API_KEY}`. \
             Set API_KEYS before exposing this server. !!!"
        );
    }
    if settings.redis_url.is_some() {
        tracing::info!(
            "REDIS_URL is set: publications, the JSON channels and the Node emitter go through \
             Redis to every instance"
        );
    }
}

/// Copies a Socket.IO request's URI and header values out of hyper's read buffer (other requests
/// pass untouched: nothing keeps their head).
///
/// hyper parses a request head into slices of its connection read buffer (8–16 KiB), and
/// engineioxide keeps a WebSocket's request head for the connection's lifetime: without the
/// copy, that whole buffer stayed allocated per idle connection (16 KiB of about 41, heaptrack
/// on 10,000 connections; bench/README).
async fn detach_request_head(mut request: axum::extract::Request) -> axum::extract::Request {
    if !request.uri().path().starts_with(SOCKET_IO_PATH) {
        return request;
    }
    let headers = std::mem::take(request.headers_mut());
    let mut copied = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            copied.append(name.clone(), owned);
        }
    }
    *request.headers_mut() = copied;
    if let Ok(uri) = request.uri().to_string().parse::<http::Uri>() {
        // The router kept the original URI too.
        if let Some(original) = request.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
            original.0 = uri.clone();
        }
        *request.uri_mut() = uri;
    }
    request
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::{OriginalUri, Request};
    use http::HeaderValue;

    #[tokio::test]
    async fn a_detached_request_head_keeps_every_header_and_the_uri() {
        let uri = "/socket.io/?EIO=4&transport=websocket&token=abc";
        let mut request = Request::builder()
            .uri(uri)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-for", "10.0.0.2")
            .body(axum::body::Body::empty())
            .unwrap();
        let mut secret = HeaderValue::from_static("Bearer t");
        secret.set_sensitive(true);
        request.headers_mut().insert("authorization", secret);
        request.extensions_mut().insert(OriginalUri(uri.parse().unwrap()));

        let request = super::detach_request_head(request).await;

        assert_eq!(request.uri(), uri);
        assert_eq!(request.extensions().get::<OriginalUri>().unwrap().0, uri);
        assert_eq!(request.headers()["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==");
        let forwarded: Vec<_> = request.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["10.0.0.1", "10.0.0.2"]);
        assert!(request.headers()["authorization"].is_sensitive());
    }
}
