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
    /// Which rooms keep history, and for how long.
    pub history: HistorySettings,
    /// `WS_ALLOW_USER_QUERY`: `/api/ws?userId=` without a token (development only).
    pub ws_allow_user_query: bool,
    /// How often plain WebSocket connections are pinged; one silent for two intervals is closed.
    pub ws_ping_interval: Duration,
    /// Frames a plain WebSocket connection may have waiting; a client that falls further behind
    /// is disconnected as a slow consumer.
    pub ws_send_queue: usize,
    /// `MSGPACK`: Socket.IO speaks the msgpack parser (socket.io-msgpack-parser clients). Every
    /// instance of a cluster must agree.
    pub msgpack: bool,
    /// How long an instance that stopped sending heartbeats still counts for presence.
    pub presence_ttl: Duration,
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
    File {
        path: PathBuf,
        source: config::ConfigError,
    },
    #[error("configuration: {0}")]
    Source(#[from] config::ConfigError),
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
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
    history_rooms: Option<String>,
    history_max_per_room: Option<String>,
    history_max_age: Option<String>,
    ws_allow_user_query: Option<String>,
    ws_ping_interval: Option<String>,
    ws_send_queue: Option<String>,
    msgpack: Option<String>,
    presence_ttl: Option<String>,
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
    pub fn from_sources(
        config_file: Option<&Path>,
        vars: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
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
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|source| match config_file {
                Some(path) => ConfigError::File {
                    path: path.to_owned(),
                    source,
                },
                None => ConfigError::Source(source),
            })?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let app_env = match raw.app_env.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("development") | Some("dev") | Some("local") => AppEnv::Development,
            Some("test") => AppEnv::Test,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(invalid(
                    "APP_ENV",
                    format!("`{other}` is not one of development, test, production"),
                ));
            }
        };

        let port = match (&raw.port, &raw.websocket_port) {
            (Some(p), _) => parse_port("PORT", p)?,
            (None, Some(p)) => parse_port("WEBSOCKET_PORT", p)?,
            (None, None) => 4000,
        };
        let host = match &raw.host {
            Some(h) => h
                .trim()
                .parse()
                .map_err(|_| invalid("HOST", format!("`{h}` is not an IP address")))?,
            None => IpAddr::from([0, 0, 0, 0]),
        };

        let redis_url = redis_url(&raw)?;
        let database_url = raw
            .database_url
            .unwrap_or_else(|| "sqlite://switchyard.db?mode=rwc".to_owned());
        let scheme_ok = ["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|s| database_url.starts_with(s));
        if !scheme_ok {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }

        let production = app_env == AppEnv::Production;
        let public_key = raw
            .jwt_public_key_file
            .as_deref()
            .map(read_public_key)
            .transpose()?;
        let configured_secret = raw.jwt_secret.map(Secret);
        if let Some(secret) = &configured_secret
            && production
            && secret.expose().len() < 32
        {
            return Err(invalid(
                "JWT_SECRET",
                "must be at least 32 characters when APP_ENV=production",
            ));
        }
        let using_development_secret = configured_secret.is_none() && public_key.is_none();
        if using_development_secret && production {
            return Err(invalid(
                "JWT_SECRET",
                "is required when APP_ENV=production (or set JWT_PUBLIC_KEY_FILE); \
                 the development secret is refused in production",
            ));
        }
        let secret = match configured_secret {
            Some(s) => Some(s),
            None if using_development_secret => Some(Secret::new(DEVELOPMENT_JWT_SECRET)),
            None => None,
        };

        let mut api_keys: Vec<Secret> = split_list(raw.api_keys.as_deref())
            .into_iter()
            .map(Secret)
            .collect();
        let using_development_api_key = api_keys.is_empty() && !production;
        if using_development_api_key {
            api_keys.push(Secret::new(DEVELOPMENT_API_KEY));
        }

        let mut cors_origins = split_list(raw.cors_origins.as_deref());
        for origin in &cors_origins {
            validate_origin("CORS_ORIGINS", origin)?;
        }
        if let Some(frontend) = raw.frontend_url.as_deref() {
            let origin = frontend.trim().trim_end_matches('/').to_owned();
            validate_origin("FRONTEND_URL", &origin)?;
            if !cors_origins.contains(&origin) {
                cors_origins.push(origin);
            }
        }

        let log_format = match raw.log_format.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("`{other}` is not one of text, json"),
                ));
            }
        };

        let cron_text = raw
            .invitation_expiry_cron
            .unwrap_or_else(|| "0 * * * *".to_owned());
        let invitation_expiry_cron = cron_text
            .parse::<croner::Cron>()
            .ok()
            .filter(|_| cron_text.split_whitespace().count() == 5)
            .ok_or_else(|| {
                invalid(
                    "INVITATION_EXPIRY_CRON",
                    format!("`{cron_text}` is not a 5-field cron expression like `0 * * * *`"),
                )
            })?;

        let channel_patterns = match raw.channel_patterns.as_deref() {
            Some(list) => split_list(Some(list))
                .iter()
                .map(|p| ChannelPattern::parse(p).map_err(|reason| invalid("CHANNEL_PATTERNS", reason)))
                .collect::<Result<Vec<_>, _>>()?,
            None => ChannelPattern::defaults(),
        };

        Ok(Settings {
            host,
            port,
            database_url,
            redis_url,
            jwt: JwtSettings {
                secret,
                using_development_secret,
                public_key,
                issuer: raw.jwt_issuer,
                audience: raw.jwt_audience,
            },
            auth_require_user: parse_bool("AUTH_REQUIRE_USER", raw.auth_require_user.as_deref())?,
            api_keys,
            using_development_api_key,
            cors_origins,
            app_env,
            rust_log: raw.rust_log,
            log_format,
            invitation_expiry_cron,
            events_allow_unknown: parse_bool(
                "EVENTS_ALLOW_UNKNOWN",
                raw.events_allow_unknown.as_deref(),
            )?,
            channel_patterns,
            redis_channel_prefix: raw.redis_channel_prefix.unwrap_or_default(),
            history: HistorySettings {
                kinds: parse_history_kinds(raw.history_rooms.as_deref())?,
                max_per_room: match raw.history_max_per_room.as_deref() {
                    Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid("HISTORY_MAX_PER_ROOM", format!("`{v}` is not a positive number"))
                    })?,
                    None => 1000,
                },
                max_age: parse_duration("HISTORY_MAX_AGE", raw.history_max_age.as_deref(), "7d")?,
            },
            ws_allow_user_query: parse_bool("WS_ALLOW_USER_QUERY", raw.ws_allow_user_query.as_deref())?,
            ws_ping_interval: parse_duration("WS_PING_INTERVAL", raw.ws_ping_interval.as_deref(), "25s")?,
            msgpack: parse_bool("MSGPACK", raw.msgpack.as_deref())?,
            presence_ttl: parse_duration("PRESENCE_TTL", raw.presence_ttl.as_deref(), "15s")?,
            ws_send_queue: match raw.ws_send_queue.as_deref() {
                Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    invalid("WS_SEND_QUEUE", format!("`{v}` is not a positive number"))
                })?,
                None => 1024,
            },
        })
    }
}

fn parse_duration(var: &'static str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default).trim();
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(var, format!("`{text}` is not a duration like 30s, 5m, 7d")))
}

fn parse_history_kinds(value: Option<&str>) -> Result<Vec<HistoryKind>, ConfigError> {
    let list = match value {
        Some(v) => split_list(Some(v)),
        None => vec!["channel".into(), "user".into(), "org".into()],
    };
    list.iter()
        .filter(|k| k.as_str() != "none")
        .map(|k| match k.as_str() {
            "channel" => Ok(HistoryKind::Channel),
            "user" => Ok(HistoryKind::User),
            "org" => Ok(HistoryKind::Org),
            "tenant" => Ok(HistoryKind::Tenant),
            "project" => Ok(HistoryKind::Project),
            "workspace-channel" => Ok(HistoryKind::WorkspaceChannel),
            "invitation" => Ok(HistoryKind::Invitation),
            other => Err(invalid(
                "HISTORY_ROOMS",
                format!("`{other}` is not one of channel, user, org, tenant, project, workspace-channel, invitation, none"),
            )),
        })
        .collect()
}

fn parse_port(var: &'static str, value: &str) -> Result<u16, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(var, format!("`{value}` is not a port number (0-65535)")))
}

fn parse_bool(var: &'static str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false") | Some("0") | Some("no") | Some("off") => Ok(false),
        Some("true") | Some("1") | Some("yes") | Some("on") => Ok(true),
        Some(other) => Err(invalid(var, format!("`{other}` is not true or false"))),
    }
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn validate_origin(var: &'static str, origin: &str) -> Result<(), ConfigError> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(()),
        _ => Err(invalid(
            var,
            format!("`{origin}` is not an origin like https://app.example.com"),
        )),
    }
}

fn redis_url(raw: &RawSettings) -> Result<Option<Secret>, ConfigError> {
    if let Some(url) = &raw.redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid("REDIS_URL", "must start with redis:// or rediss://"));
        }
        return Ok(Some(Secret::new(url.clone())));
    }
    let Some(host) = &raw.redis_host else {
        if raw.redis_port.is_some() || raw.redis_password.is_some() {
            return Err(invalid(
                "REDIS_HOST",
                "is required when REDIS_PORT or REDIS_PASSWORD is set",
            ));
        }
        return Ok(None);
    };
    let port = match &raw.redis_port {
        Some(p) => parse_port("REDIS_PORT", p)?,
        None => 6379,
    };
    let auth = match &raw.redis_password {
        Some(pw) => format!(":{}@", percent_encode(pw)),
        None => String::new(),
    };
    Ok(Some(Secret::new(format!("redis://{auth}{host}:{port}"))))
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_public_key(path: &str) -> Result<PublicKey, ConfigError> {
    const VAR: &str = "JWT_PUBLIC_KEY_FILE";
    let pem = std::fs::read(path).map_err(|e| invalid(VAR, format!("cannot read `{path}`: {e}")))?;
    if jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok() {
        return Ok(PublicKey {
            kind: PublicKeyKind::Rsa,
            pem,
        });
    }
    if jsonwebtoken::DecodingKey::from_ec_pem(&pem).is_ok() {
        return Ok(PublicKey {
            kind: PublicKeyKind::Ec,
            pem,
        });
    }
    Err(invalid(
        VAR,
        format!("`{path}` holds no PEM RSA or EC public key"),
    ))
}
