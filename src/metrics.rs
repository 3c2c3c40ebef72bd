//! The operator's numbers, in Prometheus' text format at `GET /metrics`. One registry per
//! server (tests run several servers in one process, so nothing is global). Every counter the
//! hot paths touch is resolved once here, at start: counting is an atomic add, with no label
//! lookup, lock or allocation, and deliveries are added once per publication, not per socket.
//! Connection gauges are read from the hub when scraped, so opening and closing a connection
//! costs nothing here.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::auth::AuthError;
use crate::publication::Source;

/// Local connections by protocol, as the hub counts them when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionCounts {
    /// Socket.IO clients speaking protocol 5 (socket.io-client 3 and 4).
    pub socketio_v5: usize,
    /// Socket.IO clients speaking protocol 4 (socket.io-client 2).
    pub socketio_v4: usize,
    /// Plain WebSocket connections (`/ws`, `/api/ws`).
    pub plain: usize,
}

/// Why a Redis call or message failed, the `kind` label of `switchyard_redis_errors_total`.
#[derive(Debug, Clone, Copy)]
pub enum RedisFailure {
    /// The subscriber connection failed or closed.
    Connection,
    /// A command (publish, count, presence, room operation) failed.
    Command,
    /// A message on a subscribed channel could not be used.
    Message,
    /// A probe published through the bus did not come back through the subscriber in time: the
    /// bus is not delivering end to end.
    Probe,
}

pub struct Metrics {
    registry: Registry,
    connections: IntGaugeVec,
    /// By [`Source`]: http, redis, emitter, client, presence, job, admin.
    publications: [IntCounter; 8],
    deliveries: IntCounter,
    auth_failures: IntCounterVec,
    rate_limited: IntCounter,
    redis_errors: [IntCounter; 4],
    job_runs: IntCounterVec,
    history_writes: IntCounter,
    publish_duration: Histogram,
    /// By [`Transport`]: socketio, websocket.
    slow_disconnects: [IntCounter; 2],
    /// By [`Refusal`].
    refused: [IntCounter; Refusal::ALL.len()],
}

/// Why something a peer sent was refused by one of the limits that keep one peer from
/// exhausting the server: the `reason` label of `switchyard_refused_total`. Each is a setting or
/// a fixed bound named in the README's threat model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A connection over `MAX_PENDING_CONNECTIONS_PER_ADDRESS`: too many connections from one
    /// address that have not finished a request head.
    PendingConnections,
    /// A request head not finished within `REQUEST_HEADER_TIMEOUT` (or nothing sent at all).
    HeaderTimeout,
    /// A request body not finished within `REQUEST_BODY_TIMEOUT`.
    BodyTimeout,
    /// A WebSocket message or frame over `MAX_PAYLOAD`.
    PayloadTooLarge,
    /// An admin UI login over the login rate (per address).
    AdminLogin,
    /// A user's presence changes over the presence rate: the change is kept, its announcement
    /// coalesced.
    PresenceChurn,
    /// A client event over the send queue (its answer could not be queued).
    AckOverflow,
    /// A backend publication naming a room only the server may address.
    ReservedRoom,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::PendingConnections,
        Refusal::HeaderTimeout,
        Refusal::BodyTimeout,
        Refusal::PayloadTooLarge,
        Refusal::AdminLogin,
        Refusal::PresenceChurn,
        Refusal::AckOverflow,
        Refusal::ReservedRoom,
    ];

    /// The metric's label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PendingConnections => "pending_connections",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::PayloadTooLarge => "payload_too_large",
            Refusal::AdminLogin => "admin_login_rate",
            Refusal::PresenceChurn => "presence_churn",
            Refusal::AckOverflow => "ack_overflow",
            Refusal::ReservedRoom => "reserved_room",
        }
    }
}

/// The two ways a client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    SocketIo,
    /// Plain WebSocket (`/ws`, `/api/ws`).
    WebSocket,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new("switchyard_connections", "Open client connections on this instance"),
            &["transport", "version"],
        )
        .expect("valid metric");
        let publications = IntCounterVec::new(
            Opts::new("switchyard_publications_total", "Publications accepted, by the way they came in"),
            &["source"],
        )
        .expect("valid metric");
        let deliveries =
            IntCounter::new("switchyard_deliveries_total", "Deliveries to local connections").expect("valid metric");
        let auth_failures = IntCounterVec::new(
            Opts::new("switchyard_auth_failures_total", "Connections and token refreshes refused, by code"),
            &["code"],
        )
        .expect("valid metric");
        let rate_limited =
            IntCounter::new("switchyard_rate_limited_total", "Client events refused for going over CLIENT_EVENT_RATE")
                .expect("valid metric");
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "switchyard_redis_errors_total",
                "Redis failures: connection, command, an unusable message, or a probe that did not come back",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let job_runs = IntCounterVec::new(
            Opts::new("switchyard_job_runs_total", "Scheduled job runs on this instance, by job and outcome"),
            &["job", "outcome"],
        )
        .expect("valid metric");
        let history_writes =
            IntCounter::new("switchyard_history_writes_total", "History entries written").expect("valid metric");
        let slow_disconnects = IntCounterVec::new(
            Opts::new(
                "switchyard_slow_disconnects_total",
                "Connections cut because their send queue was full (a client that stopped reading)",
            ),
            &["transport"],
        )
        .expect("valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "switchyard_refused_total",
                "What a peer sent that a protective limit refused (connections, requests, messages, logins), by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let publish_duration = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_publish_duration_seconds",
                "From a publication accepted to its delivery to this instance's connections",
            )
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
        )
        .expect("valid metric");
        for collector in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(publications.clone()),
            Box::new(deliveries.clone()),
            Box::new(auth_failures.clone()),
            Box::new(rate_limited.clone()),
            Box::new(redis_errors.clone()),
            Box::new(job_runs.clone()),
            Box::new(history_writes.clone()),
            Box::new(publish_duration.clone()),
            Box::new(slow_disconnects.clone()),
            Box::new(refused.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        // Series that exist before their first event, so dashboards and alerts see zeros.
        for outcome in ["ok", "error"] {
            job_runs.with_label_values(&["invitation_expiry", outcome]);
        }
        for code in AuthError::codes() {
            auth_failures.with_label_values(&[code]);
        }
        let source = |name: &str| publications.with_label_values(&[name]);
        let kind = |name: &str| redis_errors.with_label_values(&[name]);
        Metrics {
            publications: [
                source("http"),
                source("redis"),
                source("emitter"),
                source("client"),
                source("presence"),
                source("job"),
                source("admin"),
                source("node_server"),
            ],
            redis_errors: [kind("connection"), kind("command"), kind("message"), kind("probe")],
            slow_disconnects: ["socketio", "websocket"].map(|t| slow_disconnects.with_label_values(&[t])),
            refused: Refusal::ALL.map(|r| refused.with_label_values(&[r.label()])),
            registry,
            connections,
            deliveries,
            auth_failures,
            rate_limited,
            job_runs,
            history_writes,
            publish_duration,
        }
    }

    /// A publication accepted from `source` (those received from another instance were counted
    /// where they came in).
    pub fn published(&self, source: Source) {
        let index = match source {
            Source::Http => 0,
            Source::RedisJson => 1,
            Source::Emitter => 2,
            Source::ClientEvent => 3,
            Source::Presence => 4,
            Source::Job => 5,
            Source::Admin => 6,
            Source::NodeServer => 7,
            Source::Cluster => return,
        };
        self.publications[index].inc();
    }

    /// One publication delivered to `connections` local connections, `elapsed` after it was
    /// accepted.
    pub fn delivered(&self, connections: usize, elapsed: std::time::Duration) {
        self.deliveries.inc_by(connections as u64);
        self.publish_duration.observe(elapsed.as_secs_f64());
    }

    pub fn auth_failed(&self, code: &str) {
        self.auth_failures.with_label_values(&[code]).inc();
    }

    /// A connection cut as a slow consumer.
    pub fn slow_disconnected(&self, transport: Transport) {
        self.slow_disconnects[transport as usize].inc();
    }

    /// Something a peer sent refused by a protective limit.
    pub fn refused(&self, refusal: Refusal) {
        self.refused[refusal as usize].inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn redis_failed(&self, failure: RedisFailure) {
        self.redis_errors[failure as usize].inc();
    }

    pub fn job_ran(&self, job: &str, ok: bool) {
        self.job_runs.with_label_values(&[job, if ok { "ok" } else { "error" }]).inc();
    }

    pub fn history_written(&self, entries: usize) {
        self.history_writes.inc_by(entries as u64);
    }

    /// The exposition, with the connection gauges set from `connections`.
    pub fn render(&self, connections: ConnectionCounts) -> String {
        let gauge = |transport: &str, version: &str, n: usize| {
            self.connections.with_label_values(&[transport, version]).set(n as i64);
        };
        gauge("socketio", "5", connections.socketio_v5);
        gauge("socketio", "4", connections.socketio_v4);
        gauge("ws", "1", connections.plain);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
