//! The settings by concern, each read from the raw values: where the server listens and
//! stores, how clients and backends are admitted, the cluster, and delivery.

use std::net::IpAddr;

use super::values::{parse_duration, parse_port, percent_encode, positive, split_list, validate_origin};
use super::{
    AppEnv, ConfigError, DEVELOPMENT_API_KEY, DEVELOPMENT_JWT_SECRET, HistoryKind, HistorySettings, JwtSettings,
    LogFormat, PublicKey, PublicKeyKind, RawSettings, Secret, SocketIoTiming, invalid,
};
use crate::rooms::ChannelPattern;

pub(super) fn app_env(value: Option<&str>) -> Result<AppEnv, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("development") | Some("dev") | Some("local") => Ok(AppEnv::Development),
        Some("test") => Ok(AppEnv::Test),
        Some("production") | Some("prod") => Ok(AppEnv::Production),
        Some(other) => Err(invalid("APP_ENV", format!("`{other}` is not one of development, test, production"))),
    }
}

/// `HOST` and `PORT` (or `WEBSOCKET_PORT`).
pub(super) fn listener(raw: &RawSettings) -> Result<(IpAddr, u16), ConfigError> {
    let port = match (&raw.port, &raw.websocket_port) {
        (Some(p), _) => parse_port("PORT", p)?,
        (None, Some(p)) => parse_port("WEBSOCKET_PORT", p)?,
        (None, None) => 4000,
    };
    let host = match &raw.host {
        Some(h) => h.trim().parse().map_err(|_| invalid("HOST", format!("`{h}` is not an IP address")))?,
        None => IpAddr::from([0, 0, 0, 0]),
    };
    Ok((host, port))
}

pub(super) fn database_url(value: Option<&str>) -> Result<String, ConfigError> {
    let url = value.unwrap_or("sqlite://switchyard.db?mode=rwc").to_owned();
    if !["sqlite:", "postgres://", "postgresql://"].iter().any(|s| url.starts_with(s)) {
        return Err(invalid("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
    }
    Ok(url)
}

/// How tokens are verified; the development secret only outside production.
pub(super) fn jwt(raw: &RawSettings, production: bool) -> Result<JwtSettings, ConfigError> {
    let public_key = raw.jwt_public_key_file.as_deref().map(read_public_key).transpose()?;
    let configured_secret = raw.jwt_secret.clone().map(Secret);
    if let Some(secret) = &configured_secret
        && production
        && secret.expose().len() < 32
    {
        return Err(invalid("JWT_SECRET", "must be at least 32 characters when APP_ENV=production"));
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
    Ok(JwtSettings {
        secret,
        using_development_secret,
        public_key,
        issuer: raw.jwt_issuer.clone(),
        audience: raw.jwt_audience.clone(),
    })
}

/// The configured API keys, or the development key outside production; and whether it is
/// the development key.
pub(super) fn api_keys(value: Option<&str>, production: bool) -> (Vec<Secret>, bool) {
    let mut keys: Vec<Secret> = split_list(value).into_iter().map(Secret).collect();
    let development = keys.is_empty() && !production;
    if development {
        keys.push(Secret::new(DEVELOPMENT_API_KEY));
    }
    (keys, development)
}

/// `CORS_ORIGINS`, and `FRONTEND_URL` added to them.
pub(super) fn cors_origins(raw: &RawSettings) -> Result<Vec<String>, ConfigError> {
    let mut origins = split_list(raw.cors_origins.as_deref());
    for origin in &origins {
        validate_origin("CORS_ORIGINS", origin)?;
    }
    if let Some(frontend) = raw.frontend_url.as_deref() {
        let origin = frontend.trim().trim_end_matches('/').to_owned();
        validate_origin("FRONTEND_URL", &origin)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

pub(super) fn log_format(value: Option<&str>) -> Result<LogFormat, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") | Some("pretty") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid("LOG_FORMAT", format!("`{other}` is not one of text, json"))),
    }
}

pub(super) fn invitation_expiry_cron(value: Option<&str>) -> Result<croner::Cron, ConfigError> {
    let text = value.unwrap_or("0 * * * *");
    text.parse::<croner::Cron>().ok().filter(|_| text.split_whitespace().count() == 5).ok_or_else(|| {
        invalid("INVITATION_EXPIRY_CRON", format!("`{text}` is not a 5-field cron expression like `0 * * * *`"))
    })
}

pub(super) fn channel_patterns(value: Option<&str>) -> Result<Vec<ChannelPattern>, ConfigError> {
    match value {
        Some(list) => split_list(Some(list))
            .iter()
            .map(|p| ChannelPattern::parse(p).map_err(|reason| invalid("CHANNEL_PATTERNS", reason)))
            .collect(),
        None => Ok(ChannelPattern::defaults()),
    }
}

pub(super) fn history(raw: &RawSettings) -> Result<HistorySettings, ConfigError> {
    Ok(HistorySettings {
        kinds: parse_history_kinds(raw.history_rooms.as_deref())?,
        max_per_room: positive("HISTORY_MAX_PER_ROOM", raw.history_max_per_room.as_deref(), 1000)?,
        max_age: parse_duration("HISTORY_MAX_AGE", raw.history_max_age.as_deref(), "7d")?,
    })
}

pub(super) fn parse_history_kinds(value: Option<&str>) -> Result<Vec<HistoryKind>, ConfigError> {
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
                format!(
                    "`{other}` is not one of channel, user, org, tenant, project, workspace-channel, invitation, none"
                ),
            )),
        })
        .collect()
}

pub(super) fn redis_url(raw: &RawSettings) -> Result<Option<Secret>, ConfigError> {
    if let Some(url) = &raw.redis_url {
        check_redis_url(url).map_err(|reason| invalid("REDIS_URL", reason))?;
        return Ok(Some(Secret::new(url.clone())));
    }
    let Some(host) = &raw.redis_host else {
        if raw.redis_port.is_some() || raw.redis_password.is_some() {
            return Err(invalid("REDIS_HOST", "is required when REDIS_PORT or REDIS_PASSWORD is set"));
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

/// Node's defaults: a ping every 25 s, 20 s for its pong, 45 s to join a namespace.
pub(super) fn socketio_timing(raw: &RawSettings) -> Result<SocketIoTiming, ConfigError> {
    Ok(SocketIoTiming {
        ping_interval: parse_duration("PING_INTERVAL", raw.ping_interval.as_deref(), "25s")?,
        ping_timeout: parse_duration("PING_TIMEOUT", raw.ping_timeout.as_deref(), "20s")?,
        connect_timeout: parse_duration("CONNECT_TIMEOUT", raw.connect_timeout.as_deref(), "45s")?,
    })
}

/// Addresses (`10.0.0.7`) and networks (`10.0.0.0/8`, `fd00::/8`), comma-separated.
pub(super) fn trusted_proxies(value: Option<&str>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    split_list(value)
        .iter()
        .map(|entry| {
            entry.parse::<ipnet::IpNet>().or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from)).map_err(|_| {
                invalid("TRUSTED_PROXIES", format!("`{entry}` is not an address or a network like 10.0.0.0/8"))
            })
        })
        .collect()
}

pub(super) fn read_public_key(path: &str) -> Result<PublicKey, ConfigError> {
    const VAR: &str = "JWT_PUBLIC_KEY_FILE";
    let pem = std::fs::read(path).map_err(|e| invalid(VAR, format!("cannot read `{path}`: {e}")))?;
    if jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok() {
        return Ok(PublicKey { kind: PublicKeyKind::Rsa, pem });
    }
    if jsonwebtoken::DecodingKey::from_ec_pem(&pem).is_ok() {
        return Ok(PublicKey { kind: PublicKeyKind::Ec, pem });
    }
    Err(invalid(VAR, format!("`{path}` holds no PEM RSA or EC public key")))
}

/// Why a `REDIS_URL` names no topology the bus can use; `Ok` for one it can. The one owner of
/// the schemes: the settings check them at start, the bus's topology reads them.
pub fn check_redis_url(url: &str) -> Result<(), &'static str> {
    const SCHEMES: [&str; 5] = ["redis://", "rediss://", "redis+sentinel://", "redis+cluster://", "rediss+cluster://"];
    if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
        return Err("must start with redis://, rediss://, redis+sentinel://, redis+cluster:// or rediss+cluster://");
    }
    Ok(())
}
