//! `GET /metrics`: the Prometheus exposition counts what happened, and `METRICS_TOKEN` guards it.

use serde_json::json;

use crate::helpers::{BARRIER, spawn_app, spawn_app_with, user_token};
use crate::sio::ConnectOptions;

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_connections_publications_deliveries_refusals_and_history() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", None, None)).await;
    let mut bob = app.connect(&user_token("bob", None, None)).await;
    let refused = app.connect_with(ConnectOptions::auth_token("not-a-jwt")).await;
    assert!(refused.is_err());
    for _ in 0..2 {
        assert_eq!(alice.emit_with_ack("subscribe", json!({"channel": "venue:1"})).await["ok"], true);
    }
    // Alice and Bob each get the user-room publication meant for them, and the channel one.
    app.publish(json!({"event": "probe", "to": {"user": ["alice", "bob"]}, "data": {}})).await;
    app.publish(json!({"event": "venue_update", "to": {"channel": "venue:1"}, "data": {"crowd": "busy"}})).await;
    app.barrier().await;
    alice.events_before(BARRIER).await;
    bob.events_before(BARRIER).await;

    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, r#"switchyard_connections{transport="socketio",version="5"}"#), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"switchyard_connections{transport="ws",version="1"}"#), Some(0.0));
    assert_eq!(sample(&text, r#"switchyard_publications_total{source="http"}"#), Some(3.0));
    // probe: 2, venue_update: 1, barrier: 2 (to everyone).
    assert_eq!(sample(&text, "switchyard_deliveries_total"), Some(5.0));
    assert_eq!(sample(&text, "switchyard_publish_duration_seconds_count"), Some(3.0));
    assert_eq!(sample(&text, r#"switchyard_auth_failures_total{code="token_malformed"}"#), Some(1.0));
    // The channel and the two user rooms keep history (the default HISTORY_ROOMS).
    assert_eq!(sample(&text, "switchyard_history_writes_total"), Some(3.0));
    for name in ["switchyard_rate_limited_total", "switchyard_redis_errors_total", "switchyard_job_runs_total"] {
        assert!(text.contains(&format!("# TYPE {name} counter")), "{name} is exposed");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_over_its_event_rate_is_counted() {
    let app = spawn_app_with(&[("CLIENT_EVENT_RATE", "1")]).await;
    let mut alice = app.connect(&user_token("alice", None, None)).await;
    let mut refused = 0;
    for _ in 0..5 {
        if alice.emit_with_ack("subscribe", json!({"channel": "venue:1"})).await["ok"] == false {
            refused += 1;
        }
    }
    assert!(refused >= 2, "burst of 2, then refusals");
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&text, "switchyard_rate_limited_total"), Some(refused as f64));
    app.stop().await;
}

#[tokio::test]
async fn metrics_token_is_required_when_set() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "scrape-secret")]).await;
    let bare = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(body["error"]["code"], "metrics_token_required");
    let wrong = app.http.get(app.url("/metrics")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.http.get(app.url("/metrics")).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(right.text().await.unwrap().contains("switchyard_deliveries_total"));
    app.stop().await;
}

/// The Grafana dashboard in `deploy/` is built on series the server exposes.
#[tokio::test]
async fn the_grafana_dashboard_uses_only_exposed_series() {
    let app = spawn_app().await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in
                expr.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| w.starts_with("switchyard_"))
            {
                assert!(
                    text.contains(&format!("# TYPE {word} ")) || text.contains(&format!("\n{word}")),
                    "{word} is not exposed"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "every panel names a series");
    app.stop().await;
}
