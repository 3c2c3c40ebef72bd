//! The binary as a user runs it: `switchyard`, `switchyard migrate`, `switchyard token`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard::auth::TokenVerifier;
use switchyard::config::Settings;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A command with a clean environment in an empty directory (no `.env`, no `switchyard.toml`).
/// The lines a spawned server writes to its stdout (its log), as they come.
fn log_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn switchyard(dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(dir.path());
    cmd
}

#[test]
fn a_wrong_value_stops_the_start_with_the_variable_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(&dir).env("PORT", "abc").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORT: `abc` is not a port number"), "{stderr}");

    let out = switchyard(&dir).arg("serve").env("APP_ENV", "production").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

#[test]
fn token_prints_a_jwt_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-test-secret-0123456789abcdef0123";
    let out = switchyard(&dir)
        .env("JWT_SECRET", secret)
        .args(["token", "--sub", "u1", "--org", "42", "--tenant", "t1", "--role", "admin", "--ttl", "5m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let settings = Settings::from_vars([("JWT_SECRET", secret)]).unwrap();
    let identity = TokenVerifier::new(&settings.jwt).verify(token.trim()).unwrap();
    assert_eq!(identity.user_id, "u1");
    assert_eq!(identity.organization_id.as_deref(), Some("42"));
    assert_eq!(identity.tenant_id.as_deref(), Some("t1"));
    assert_eq!(identity.role.as_deref(), Some("admin"));
    let ttl = identity.expires_at - chrono::Utc::now().timestamp();
    assert!((290..=300).contains(&ttl), "ttl {ttl}");
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(&dir).arg("migrate").env("DATABASE_URL", "sqlite://fresh.db?mode=rwc").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("fresh.db").exists());
}

#[tokio::test]
async fn serve_logs_json_without_tokens_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "log-test-secret-0123456789abcdef0123";
    let mut child = switchyard(&dir)
        .envs([
            ("PORT", "0"),
            ("HOST", "127.0.0.1"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "trace"),
            ("JWT_SECRET", secret),
            ("API_KEYS", "log-test-key"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = log_lines(&mut child);
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("server logs `listening`");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        lines.push(line);
        if v["message"] == "listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };

    let settings = Settings::from_vars([("JWT_SECRET", secret)]).unwrap();
    let token = TokenVerifier::new(&settings.jwt).sign(&crate::helpers::claims("logged-user")).unwrap();
    let http = reqwest::Client::new();
    // A polling handshake with the token in the query string, then a publish with the key.
    let open = http
        .get(format!("http://{addr}/socket.io/?EIO=4&transport=polling&token={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(open.starts_with('0'), "{open}");
    let published = http
        .post(format!("http://{addr}/api/events"))
        .header("x-api-key", "log-test-key")
        .json(&serde_json::json!({"event": "notification:new", "to": {"user": "logged-user"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        lines.push(line);
    }
    assert!(lines.iter().any(|l| l.contains("\"stopped\"")), "no `stopped` line");
    for line in &lines {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "not JSON: {line}");
        assert!(!line.contains(&token), "token leaked: {line}");
        assert!(!line.contains(secret) && !line.contains("log-test-key"), "secret leaked: {line}");
    }
}

#[tokio::test]
async fn refused_packets_cost_fewer_bytes_of_log_than_they_took_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = switchyard(&dir)
        .envs([
            ("PORT", "0"),
            ("HOST", "127.0.0.1"),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
            ("JWT_SECRET", "amplification-secret-0123456789abcdef"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = log_lines(&mut child);
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("server logs `listening`");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["message"] == "listening" {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };

    // A session without a token, then 1 MiB of namespace CONNECTs (each refused) and events on
    // the namespace it never joined, in one polling body.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
    let open = http.get(&url).send().await.unwrap().text().await.unwrap();
    let sid = serde_json::from_str::<serde_json::Value>(&open[1..]).unwrap()["sid"].as_str().unwrap().to_owned();
    let mut body = String::new();
    while body.len() < 1024 * 1024 - 32 {
        body.push_str("40\u{1e}42[\"x\",1]\u{1e}");
    }
    body.pop();
    let sent = body.len();
    let posted = http.post(format!("{url}&sid={sid}")).body(body).send().await.unwrap();
    assert_eq!(posted.status(), 200);

    // Everything the server logs in the next second, while it works through the body.
    let mut logged = 0;
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => logged += line.len() + 1,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(logged < sent, "{logged} bytes of log for {sent} bytes sent");
}
