//! `spawn_app()`: one real server per test, on port 0, with its own SQLite file.

use std::net::SocketAddr;

use serde_json::{Value, json};
use switchyard::Application;
use switchyard::auth::{Claims, TokenVerifier};
use switchyard::config::Settings;
use switchyard::state::AppState;
use tokio::sync::oneshot;

use crate::sio::{ConnectError, ConnectOptions, SioClient};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const API_KEY: &str = "test-api-key-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server with the test defaults overridden by `vars`.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    let mut all: Vec<(String, String)> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("APP_ENV", "test"),
        ("JWT_SECRET", SECRET),
        ("API_KEYS", API_KEY),
        ("RUST_LOG", "warn"),
        // Tests publish probe and barrier events that no contract names.
        ("EVENTS_ALLOW_UNKNOWN", "true"),
        // Stopping closes every connection at once (the drain is tested on its own).
        ("SHUTDOWN_DRAIN", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    all.push(("DATABASE_URL".into(), db));
    for (k, v) in vars {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    let settings = Settings::from_vars(all).expect("test settings");
    switchyard::telemetry::init(&settings);
    let app = Application::build(settings).await.expect("application starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp { addr, http: reqwest::Client::new(), state, shutdown: Some(tx), server: Some(server), _dir: dir }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Tells the server to stop, the way SIGTERM does, without waiting (see [`TestApp::stop`]).
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(std::time::Duration::from_secs(15), server)
                .await
                .expect("server stops within 15 s")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(API_KEY).json(body).send().await.unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.put(self.url(path)).header("x-api-key", API_KEY).json(body).send().await.unwrap()
    }

    /// `GET` with the API key, asserting 200; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).bearer_auth(API_KEY).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// `POST /api/events`, asserting 202.
    pub async fn publish(&self, body: Value) -> Value {
        let response = self.post_json("/api/events", &body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 202, "publish refused: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Publishes the barrier event to everyone (see `SioClient::events_before`).
    pub async fn barrier(&self) {
        self.publish(json!({"event": BARRIER, "to": {"all": true}})).await;
    }

    pub async fn connect(&self, token: &str) -> SioClient {
        SioClient::connect(self.addr, ConnectOptions::auth_token(token))
            .await
            .unwrap_or_else(|e| panic!("connection refused: {}", e.message))
    }

    pub async fn connect_with(&self, options: ConnectOptions) -> Result<SioClient, ConnectError> {
        SioClient::connect(self.addr, options).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub const BARRIER: &str = "test:barrier";

/// The Redis the tests share (`TEST_REDIS_URL`, set by scripts/test), and a channel prefix no
/// other test uses.
pub fn test_redis() -> (String, String) {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    (url, prefix)
}

/// Publishes `payload` on `channel` of the test Redis.
pub async fn redis_publish(url: &str, channel: &str, payload: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis must be reachable at {url} (TEST_REDIS_URL): {e}"));
    let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(payload).query_async(&mut conn).await.unwrap();
}

impl TestApp {
    /// Waits until the Redis bridge has subscribed (status `connected`).
    pub async fn wait_for_redis(&self) {
        for _ in 0..200 {
            let status: Value = self.http.get(self.url("/api/websocket")).send().await.unwrap().json().await.unwrap();
            if status["redis"] == "connected" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the Redis bridge never connected");
    }
}

/// Claims for a user, valid for an hour.
pub fn claims(sub: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.to_owned(),
        exp: now + 3600,
        iat: Some(now),
        organization_id: None,
        tenant_id: None,
        role: None,
        email_verified: None,
        iss: None,
        aud: None,
    }
}

/// A token signed with the test secret.
pub fn sign(claims: &Claims) -> String {
    sign_with(SECRET, claims)
}

pub fn sign_with(secret: &str, claims: &Claims) -> String {
    let settings = Settings::from_vars([("JWT_SECRET", secret)]).unwrap();
    TokenVerifier::new(&settings.jwt).sign(claims).unwrap()
}

/// A token for `sub` in organization `org` (and tenant `tenant`, when given).
pub fn user_token(sub: &str, org: Option<&str>, tenant: Option<&str>) -> String {
    let mut c = claims(sub);
    c.organization_id = org.map(str::to_owned);
    c.tenant_id = tenant.map(str::to_owned);
    sign(&c)
}

/// `events` without presence announcements (`user:status`), which any connection in a shared
/// org or tenant causes.
pub fn without_presence(events: Vec<(String, Value)>) -> Vec<(String, Value)> {
    events.into_iter().filter(|(n, _)| n != "user:status").collect()
}

/// The events named `event` among `events`.
pub fn named<'a>(events: &'a [(String, Value)], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|(n, _)| n == event).map(|(_, d)| d).collect()
}
