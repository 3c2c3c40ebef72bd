//! Settings: layering and errors that name the variable.

use std::collections::HashMap;

use switchyard::config::{AppEnv, LogFormat, Settings};

fn error_for(vars: &[(&str, &str)]) -> String {
    match Settings::from_vars(vars.iter().copied()) {
        Ok(_) => panic!("{vars:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_serve_port_4000_on_sqlite_with_the_development_secret() {
    let s = Settings::from_vars(Vec::<(String, String)>::new()).unwrap();
    assert_eq!(s.port, 4000);
    assert_eq!(s.host.to_string(), "0.0.0.0");
    assert!(s.database_url.starts_with("sqlite:"));
    assert!(s.jwt.using_development_secret);
    assert!(s.redis_url.is_none());
    assert_eq!(s.app_env, AppEnv::Development);
    assert_eq!(s.invitation_expiry_cron.as_str(), "0 * * * *");
}

#[test]
fn wrong_values_stop_the_start_with_the_variable_named() {
    for (vars, var) in [
        (vec![("PORT", "abc")], "PORT"),
        (vec![("WEBSOCKET_PORT", "70000")], "WEBSOCKET_PORT"),
        (vec![("HOST", "not-an-ip")], "HOST"),
        (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        (vec![("REDIS_URL", "http://localhost")], "REDIS_URL"),
        (vec![("REDIS_HOST", "localhost"), ("REDIS_PORT", "x")], "REDIS_PORT"),
        (vec![("JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem")], "JWT_PUBLIC_KEY_FILE"),
        (vec![("JWT_PUBLIC_KEY_FILE", "Cargo.toml")], "JWT_PUBLIC_KEY_FILE"),
        (vec![("AUTH_REQUIRE_USER", "maybe")], "AUTH_REQUIRE_USER"),
        (vec![("CORS_ORIGINS", "app.example.com")], "CORS_ORIGINS"),
        (vec![("APP_ENV", "staging-ish")], "APP_ENV"),
        (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
        (vec![("INVITATION_EXPIRY_CRON", "hourly")], "INVITATION_EXPIRY_CRON"),
        (vec![("INVITATION_EXPIRY_CRON", "0 * * *")], "INVITATION_EXPIRY_CRON"),
        (vec![("CHANNEL_PATTERNS", "user:{id}")], "CHANNEL_PATTERNS"),
        (vec![("EVENTS_ALLOW_UNKNOWN", "sometimes")], "EVENTS_ALLOW_UNKNOWN"),
        (vec![("HISTORY_ROOMS", "channel,galaxy")], "HISTORY_ROOMS"),
        (vec![("HISTORY_MAX_PER_ROOM", "0")], "HISTORY_MAX_PER_ROOM"),
        (vec![("HISTORY_MAX_AGE", "forever")], "HISTORY_MAX_AGE"),
        (vec![("WS_PING_INTERVAL", "0s")], "WS_PING_INTERVAL"),
        (vec![("WS_SEND_QUEUE", "-1")], "WS_SEND_QUEUE"),
        (vec![("PING_INTERVAL", "0s")], "PING_INTERVAL"),
        (vec![("PING_TIMEOUT", "soon")], "PING_TIMEOUT"),
        (vec![("CONNECT_TIMEOUT", "-1s")], "CONNECT_TIMEOUT"),
        (vec![("TRUSTED_PROXIES", "10.0.0.0/33")], "TRUSTED_PROXIES"),
        (vec![("TRUSTED_PROXIES", "proxy.internal")], "TRUSTED_PROXIES"),
        (vec![("SHUTDOWN_DRAIN", "a while")], "SHUTDOWN_DRAIN"),
    ] {
        let message = error_for(&vars);
        assert!(message.starts_with(&format!("{var}: ")), "{vars:?}: {message}");
    }
}

#[test]
fn production_refuses_the_development_secret_and_short_secrets() {
    assert!(error_for(&[("APP_ENV", "production")]).starts_with("JWT_SECRET: "));
    assert!(error_for(&[("APP_ENV", "production"), ("JWT_SECRET", "short")]).starts_with("JWT_SECRET: "));
    let ok = Settings::from_vars([
        ("APP_ENV", "production"),
        ("JWT_SECRET", "a-real-secret-that-is-long-enough-0123"),
        ("API_KEYS", "k1, k2 ,"),
    ])
    .unwrap();
    assert!(!ok.jwt.using_development_secret);
    assert!(!ok.using_development_api_key);
    assert_eq!(ok.api_keys.len(), 2);
}

#[test]
fn redis_host_port_password_build_a_url_and_secrets_never_print() {
    let s = Settings::from_vars([
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PORT", "6380"),
        ("REDIS_PASSWORD", "p@ss word"),
        ("JWT_SECRET", "super-secret-value"),
    ])
    .unwrap();
    assert_eq!(s.redis_url.as_ref().unwrap().expose(), "redis://:p%40ss%20word@cache.internal:6380");
    let debug = format!("{s:?}");
    assert!(!debug.contains("super-secret-value") && !debug.contains("p%40ss"), "{debug}");
}

#[test]
fn a_file_is_weaker_than_the_environment_and_port_falls_back_to_websocket_port() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, "port = 1234\nlog_format = \"json\"\ncors_origins = \"https://a.example\"\n").unwrap();
    let env = HashMap::from([("PORT".to_owned(), "5678".to_owned())]);
    let s = Settings::from_sources(Some(&file), env).unwrap();
    assert_eq!(s.port, 5678);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.cors_origins, ["https://a.example"]);

    let from_file = Settings::from_sources(Some(&file), HashMap::new()).unwrap();
    assert_eq!(from_file.port, 1234);
    let ws_port = Settings::from_vars([("WEBSOCKET_PORT", "8080")]).unwrap();
    assert_eq!(ws_port.port, 8080);
}

/// Every configuration name the product documents is in `.env.example`, and its uncommented
/// defaults load.
#[test]
fn env_example_lists_every_variable_and_its_defaults_load() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for name in [
        "PORT",
        "WEBSOCKET_PORT",
        "HOST",
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY_FILE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "AUTH_REQUIRE_USER",
        "API_KEYS",
        "CORS_ORIGINS",
        "FRONTEND_URL",
        "APP_ENV",
        "RUST_LOG",
        "LOG_FORMAT",
        "INVITATION_EXPIRY_CRON",
        "EVENTS_ALLOW_UNKNOWN",
        "CHANNEL_PATTERNS",
        "REDIS_CHANNEL_PREFIX",
        "HISTORY_ROOMS",
        "HISTORY_MAX_PER_ROOM",
        "HISTORY_MAX_AGE",
        "WS_PING_INTERVAL",
        "WS_SEND_QUEUE",
        "WS_ALLOW_USER_QUERY",
        "MSGPACK",
        "PRESENCE_TTL",
        "METRICS_TOKEN",
        "ADMIN_USERNAME",
        "ADMIN_PASSWORD",
        "ADMIN_LOGIN_RATE",
        "TLS_CERT_FILE",
        "TLS_KEY_FILE",
        "PING_INTERVAL",
        "PING_TIMEOUT",
        "CONNECT_TIMEOUT",
        "TRUSTED_PROXIES",
        "SHUTDOWN_DRAIN",
    ] {
        assert!(text.contains(&format!("{name}=")), "{name} is not in .env.example");
    }
    let vars: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let s = Settings::from_vars(vars).unwrap();
    assert_eq!(s.port, 4000);
}

#[test]
fn heartbeat_proxies_and_drain_read_as_given() {
    let s = Settings::from_vars([
        ("PING_INTERVAL", "300ms"),
        ("PING_TIMEOUT", "200ms"),
        ("CONNECT_TIMEOUT", "1s"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.2,fd00::/8"),
        ("SHUTDOWN_DRAIN", "0"),
    ])
    .unwrap();
    assert_eq!(s.socketio_timing.ping_interval, std::time::Duration::from_millis(300));
    assert_eq!(s.socketio_timing.ping_timeout, std::time::Duration::from_millis(200));
    assert_eq!(s.socketio_timing.connect_timeout, std::time::Duration::from_secs(1));
    let proxies: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.2/32", "fd00::/8"]);
    assert!(s.shutdown_drain.is_zero());
    let defaults = Settings::from_vars([("PORT", "0")]).unwrap();
    assert_eq!(defaults.socketio_timing.ping_interval, std::time::Duration::from_secs(25));
    assert_eq!(defaults.shutdown_drain, std::time::Duration::from_secs(5));
    assert!(defaults.trusted_proxies.is_empty());
}

#[test]
fn operations_settings_name_the_variable_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let garbage = garbage.to_str().unwrap();
    for (vars, var) in [
        (vec![("TLS_CERT_FILE", missing), ("TLS_KEY_FILE", missing)], "TLS_CERT_FILE: cannot read"),
        (vec![("TLS_CERT_FILE", garbage), ("TLS_KEY_FILE", garbage)], "TLS_CERT_FILE"),
        (vec![("TLS_CERT_FILE", garbage)], "TLS_KEY_FILE: is required"),
        (vec![("ADMIN_USERNAME", "operator")], "ADMIN_PASSWORD: is required"),
        (vec![("ADMIN_PASSWORD", "secret")], "ADMIN_USERNAME: is required"),
        (
            vec![("ADMIN_USERNAME", "operator"), ("ADMIN_PASSWORD", "$2b$10$tooshort")],
            "ADMIN_PASSWORD: looks like a bcrypt hash",
        ),
        (vec![("ADMIN_LOGIN_RATE", "0")], "ADMIN_LOGIN_RATE"),
        (vec![("ADMIN_LOGIN_RATE", "often")], "ADMIN_LOGIN_RATE"),
    ] {
        let error = error_for(&vars);
        assert!(error.starts_with(var), "{vars:?}: {error}");
    }
}

#[test]
fn the_admin_password_may_be_plain_or_a_bcrypt_hash() {
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    for password in ["correct horse", hash.as_str()] {
        let s = Settings::from_vars([("ADMIN_USERNAME", "operator"), ("ADMIN_PASSWORD", password)]).unwrap();
        let login = s.operations.admin.expect("admin login configured");
        assert!(login.password.matches("correct horse"), "{password}");
        assert!(!login.password.matches("correct horsE"), "{password}");
        assert!(!login.password.matches(""), "{password}");
        assert_eq!(login.attempts_per_minute, 10, "ADMIN_LOGIN_RATE's default");
    }
    let s = Settings::from_vars([("ADMIN_USERNAME", "o"), ("ADMIN_PASSWORD", "p"), ("ADMIN_LOGIN_RATE", "3")]).unwrap();
    assert_eq!(s.operations.admin.unwrap().attempts_per_minute, 3);
}
