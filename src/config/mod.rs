//! Settings: every knob Switchyard has, read once at start and validated.
//!
//! Sources, weakest first: built-in defaults, an optional TOML file (`switchyard.toml`, or the
//! path given with `--config`), a `.env` file in the working directory, then the process
//! environment. Keys are the environment names (`PORT`, `JWT_SECRET`, ...); in the file they may
//! be written in lower case. A value that does not parse stops the start with an error naming the
//! variable. This is the only module that reads environment variables.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::rooms::ChannelPattern;

mod operations;
mod sections;
mod timing;
mod values;

pub use operations::{AdminLogin, AdminPassword, Operations, Tls};
pub use sections::check_redis_url;
pub use timing::{RequestSettings, SocketIoTiming};

/// The development signing secret, used only when no key is configured outside production.
pub const DEVELOPMENT_JWT_SECRET: &str = "switchyard-development-secret-change-me";
/// The development API key, used only when `API_KEYS` is empty outside production.
pub const DEVELOPMENT_API_KEY: &str = "switchyard-dev-key";

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, compared without an early exit (the time taken does not
    /// tell how much of a guess matched).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How tokens are verified. At least one of `secret` and `public_key` is set after loading.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// HS256 secret (`JWT_SECRET`), or the development secret outside production.
    pub secret: Option<Secret>,
    /// True when `secret` is the built-in development secret: logged loudly at start.
    pub using_development_secret: bool,
    /// RS256/ES256 verification key read from `JWT_PUBLIC_KEY_FILE`.
    pub public_key: Option<PublicKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// A PEM public key and the family of algorithms it can verify.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub kind: PublicKeyKind,
    pub pem: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKeyKind {
    Rsa,
    Ec,
}

/// Everything the server needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: IpAddr,
    /// 0 asks the OS for a free port (what tests do).
    pub port: u16,
    pub database_url: String,
    /// `redis://` URL built from `REDIS_URL` or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`.
    pub redis_url: Option<Secret>,
    pub jwt: JwtSettings,
    /// `AUTH_REQUIRE_USER`: a token's user must exist in the directory with a verified email.
    pub auth_require_user: bool,
    /// Keys that backends present to publish and to maintain the directory.
    pub api_keys: Vec<Secret>,
    pub using_development_api_key: bool,
    /// Origins allowed to make credentialed cross-origin requests; empty means any origin
    /// without credentials.
    pub cors_origins: Vec<String>,
    pub app_env: AppEnv,
    pub rust_log: Option<String>,
    pub log_format: LogFormat,
    pub invitation_expiry_cron: croner::Cron,
    /// `EVENTS_ALLOW_UNKNOWN`: the publish API accepts event names outside the catalogue.
    pub events_allow_unknown: bool,
    /// Public channel names clients may subscribe to (`CHANNEL_PATTERNS`).
    pub channel_patterns: Vec<ChannelPattern>,
    /// Prepended to every Redis channel and key Switchyard uses (`REDIS_CHANNEL_PREFIX`), so
    /// that several deployments (or test runs) can share one Redis.
    pub redis_channel_prefix: String,
    /// `NODE_FLEET`: this instance is a peer of the Node servers' `@socket.io/redis-adapter` on
    /// the same Redis (answers their requests, mirrors its publications to their sockets).
    pub node_fleet: bool,
    /// `NODE_ADAPTER_KEY`: the Node adapter's and emitter's `key` (after the prefix).
    pub node_adapter_key: String,
    /// Which rooms keep history, and for how long.
    pub history: HistorySettings,
    /// `WS_ALLOW_USER_QUERY`: `/api/ws?userId=` without a token (development only).
    pub ws_allow_user_query: bool,
    /// How often plain WebSocket connections are pinged; one silent for two intervals is closed.
    pub ws_ping_interval: Duration,
    /// Frames a plain WebSocket connection may have waiting; a client that falls further behind
    /// is disconnected as a slow consumer.
    pub ws_send_queue: usize,
    /// Socket.IO's heartbeat and namespace deadline (`PING_INTERVAL`, `PING_TIMEOUT`,
    /// `CONNECT_TIMEOUT`), for both protocol versions.
    pub socketio_timing: SocketIoTiming,
    /// `TRUSTED_PROXIES`: addresses (or networks) of the proxies whose `X-Forwarded-For` names
    /// the client; a request from anywhere else is the client itself.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `SHUTDOWN_DRAIN`: at SIGTERM, the connections are closed spread over this long (zero:
    /// all at once), so the instances that stay see a bounded reconnect rate.
    pub shutdown_drain: Duration,
    /// `MSGPACK`: Socket.IO speaks the msgpack parser (socket.io-msgpack-parser clients). Every
    /// instance of a cluster must agree.
    pub msgpack: bool,
    /// How long an instance that stopped sending heartbeats still counts for presence.
    pub presence_ttl: Duration,
    /// `RECOVERY_MAX_DISCONNECTION`: how long after a disconnection an opted-in Socket.IO
    /// client can still resume its session with nothing lost.
    pub recovery_window: Duration,
    /// `TOKEN_EXPIRY_NOTICE`: how long before its token expires a connection is told
    /// (`auth:expiring`); unset: not told.
    pub token_expiry_notice: Option<Duration>,
    /// `CLIENT_EVENT_RATE`: client events per second per connection (burst twice that).
    pub client_event_rate: u32,
    /// `MAX_CONNECTIONS_PER_USER`: one user's connections across the cluster (0: no limit).
    pub max_connections_per_user: usize,
    /// `MAX_PAYLOAD`: bytes of one client message, and of one publication's body.
    pub max_payload: usize,
    /// `MAX_SUBSCRIPTIONS`: public channels one connection may be subscribed to.
    pub max_subscriptions: usize,
    /// How long a peer may take to send a request: `REQUEST_HEADER_TIMEOUT`,
    /// `REQUEST_BODY_TIMEOUT`, `MAX_PENDING_CONNECTIONS_PER_ADDRESS`.
    pub requests: RequestSettings,
    /// `PRESENCE_ANNOUNCE_INTERVAL`: a user's `user:status` changes are announced to his
    /// organization at most once per this long (the last state wins).
    pub presence_announce_interval: Duration,
    /// Metrics access, the admin UI's login, TLS.
    pub operations: Operations,
}

/// The kinds of room whose publications are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryKind {
    /// Public channels (`venue:42`, `stores`, ...).
    Channel,
    User,
    Org,
    Tenant,
    Project,
    WorkspaceChannel,
    Invitation,
}

#[derive(Debug, Clone)]
pub struct HistorySettings {
    pub kinds: Vec<HistoryKind>,
    /// Entries kept per room (older ones are pruned).
    pub max_per_room: u64,
    /// Entries older than this are pruned.
    pub max_age: Duration,
}

/// Why the settings could not be loaded. Each message names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("configuration file {path}: {source}")]
    File { path: PathBuf, source: config::ConfigError },
    #[error("configuration: {0}")]
    Source(#[from] config::ConfigError),
}

/// The default key of the Node emitter and `@socket.io/redis-adapter` (`NODE_ADAPTER_KEY`).
pub const NODE_ADAPTER_KEY: &str = "socket.io";

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

/// The raw values as the sources give them; every field is parsed in [`Settings::from_raw`].
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    port: Option<String>,
    websocket_port: Option<String>,
    host: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_host: Option<String>,
    redis_port: Option<String>,
    redis_password: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key_file: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    auth_require_user: Option<String>,
    api_keys: Option<String>,
    cors_origins: Option<String>,
    frontend_url: Option<String>,
    app_env: Option<String>,
    rust_log: Option<String>,
    log_format: Option<String>,
    invitation_expiry_cron: Option<String>,
    events_allow_unknown: Option<String>,
    channel_patterns: Option<String>,
    redis_channel_prefix: Option<String>,
    node_fleet: Option<String>,
    node_adapter_key: Option<String>,
    history_rooms: Option<String>,
    history_max_per_room: Option<String>,
    history_max_age: Option<String>,
    ws_allow_user_query: Option<String>,
    ws_ping_interval: Option<String>,
    ping_interval: Option<String>,
    ping_timeout: Option<String>,
    connect_timeout: Option<String>,
    trusted_proxies: Option<String>,
    shutdown_drain: Option<String>,
    ws_send_queue: Option<String>,
    msgpack: Option<String>,
    presence_ttl: Option<String>,
    recovery_max_disconnection: Option<String>,
    token_expiry_notice: Option<String>,
    client_event_rate: Option<String>,
    max_connections_per_user: Option<String>,
    max_payload: Option<String>,
    max_subscriptions: Option<String>,
    request_header_timeout: Option<String>,
    request_body_timeout: Option<String>,
    max_pending_connections_per_address: Option<String>,
    presence_announce_interval: Option<String>,
    metrics_token: Option<String>,
    admin_username: Option<String>,
    admin_password: Option<String>,
    admin_login_rate: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
}

impl Settings {
    /// Loads from the real sources: `config_file` (or `switchyard.toml` if present), `.env`,
    /// then the process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(iter) = dotenvy::dotenv_iter() {
            vars.extend(iter.flatten());
        }
        vars.extend(std::env::vars());
        Self::from_sources(config_file, vars)
    }

    /// Loads from an explicit set of variables (tests use this: no process-global state).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Self::from_sources(None, vars)
    }

    /// Loads from an optional file and an explicit set of variables (the file is weaker).
    pub fn from_sources(config_file: Option<&Path>, vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        match config_file {
            Some(path) => {
                builder = builder.add_source(config::File::from(path).required(true));
            }
            None => {
                builder = builder.add_source(config::File::with_name("switchyard").required(false));
            }
        }
        // Empty values count as unset, as they do in most deployment tools.
        let vars = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        builder = builder.add_source(config::Environment::default().source(Some(vars)));
        let raw: RawSettings =
            builder.build().and_then(|c| c.try_deserialize()).map_err(|source| match config_file {
                Some(path) => ConfigError::File { path: path.to_owned(), source },
                None => ConfigError::Source(source),
            })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let app_env = sections::app_env(raw.app_env.as_deref())?;
        let production = app_env == AppEnv::Production;
        let (host, port) = sections::listener(&raw)?;
        let redis_url = sections::redis_url(&raw)?;
        let database_url = sections::database_url(raw.database_url.as_deref())?;
        let node_fleet = values::parse_bool("NODE_FLEET", raw.node_fleet.as_deref())?;
        if node_fleet && redis_url.is_none() {
            return Err(invalid("NODE_FLEET", "Node servers are met on Redis: set REDIS_URL (or REDIS_HOST) too"));
        }
        let jwt = sections::jwt(&raw, production)?;
        let (api_keys, using_development_api_key) = sections::api_keys(raw.api_keys.as_deref(), production);
        Ok(Settings {
            host,
            port,
            database_url,
            redis_url,
            jwt,
            auth_require_user: values::parse_bool("AUTH_REQUIRE_USER", raw.auth_require_user.as_deref())?,
            api_keys,
            using_development_api_key,
            cors_origins: sections::cors_origins(&raw)?,
            app_env,
            log_format: sections::log_format(raw.log_format.as_deref())?,
            invitation_expiry_cron: sections::invitation_expiry_cron(raw.invitation_expiry_cron.as_deref())?,
            events_allow_unknown: values::parse_bool("EVENTS_ALLOW_UNKNOWN", raw.events_allow_unknown.as_deref())?,
            channel_patterns: sections::channel_patterns(raw.channel_patterns.as_deref())?,
            history: sections::history(&raw)?,
            ws_allow_user_query: values::parse_bool("WS_ALLOW_USER_QUERY", raw.ws_allow_user_query.as_deref())?,
            ws_ping_interval: values::parse_duration("WS_PING_INTERVAL", raw.ws_ping_interval.as_deref(), "25s")?,
            socketio_timing: sections::socketio_timing(&raw)?,
            trusted_proxies: sections::trusted_proxies(raw.trusted_proxies.as_deref())?,
            shutdown_drain: values::parse_duration_or_zero("SHUTDOWN_DRAIN", raw.shutdown_drain.as_deref(), "5s")?,
            msgpack: values::parse_bool("MSGPACK", raw.msgpack.as_deref())?,
            presence_ttl: values::parse_duration("PRESENCE_TTL", raw.presence_ttl.as_deref(), "15s")?,
            client_event_rate: values::positive("CLIENT_EVENT_RATE", raw.client_event_rate.as_deref(), 10)?,
            max_connections_per_user: match raw.max_connections_per_user.as_deref().map(str::trim) {
                Some("0") => 0,
                other => values::positive("MAX_CONNECTIONS_PER_USER", other, 50)?,
            },
            max_payload: values::positive("MAX_PAYLOAD", raw.max_payload.as_deref(), 1024 * 1024)?,
            max_subscriptions: values::positive("MAX_SUBSCRIPTIONS", raw.max_subscriptions.as_deref(), 100)?,
            requests: timing::requests(&raw)?,
            presence_announce_interval: values::parse_duration_or_zero(
                "PRESENCE_ANNOUNCE_INTERVAL",
                raw.presence_announce_interval.as_deref(),
                "1s",
            )?,
            token_expiry_notice: raw
                .token_expiry_notice
                .as_deref()
                .map(|v| values::parse_duration("TOKEN_EXPIRY_NOTICE", Some(v), "0s"))
                .transpose()?,
            recovery_window: values::parse_duration(
                "RECOVERY_MAX_DISCONNECTION",
                raw.recovery_max_disconnection.as_deref(),
                "2m",
            )?,
            ws_send_queue: values::positive("WS_SEND_QUEUE", raw.ws_send_queue.as_deref(), 1024)?,
            operations: operations::operations(operations::RawOperations {
                metrics_token: raw.metrics_token.as_deref(),
                admin_username: raw.admin_username.as_deref(),
                admin_password: raw.admin_password.as_deref(),
                admin_login_rate: raw.admin_login_rate.as_deref(),
                tls_cert_file: raw.tls_cert_file.as_deref(),
                tls_key_file: raw.tls_key_file.as_deref(),
            })?,
            rust_log: raw.rust_log,
            redis_channel_prefix: raw.redis_channel_prefix.unwrap_or_default(),
            node_fleet,
            node_adapter_key: raw.node_adapter_key.unwrap_or_else(|| NODE_ADAPTER_KEY.to_owned()),
        })
    }
}
