//! Public channels over Socket.IO and the `/api/websocket` control endpoint.

use serde_json::{Value, json};

use crate::helpers::{BARRIER, named, spawn_app, spawn_app_with, user_token};

#[tokio::test]
async fn subscribers_of_a_channel_receive_its_broadcasts_once() {
    let app = spawn_app().await;
    let mut fan = app.connect(&user_token("fan", None, None)).await;
    let mut all_venues = app.connect(&user_token("ops", None, None)).await;
    let mut other = app.connect(&user_token("other", None, None)).await;
    assert_eq!(
        fan.emit_with_ack("subscribe", json!({"channel": "venue:42"})).await,
        json!({"ok": true, "channel": "venue:42"})
    );
    assert_eq!(all_venues.emit_with_ack("subscribe", json!("venue_updates")).await["ok"], true);
    assert_eq!(other.emit_with_ack("subscribe", json!({"channel": "venue:43"})).await["ok"], true);

    let body = json!({"action": "broadcast", "channel": "venue:42", "data": {"id": "42", "status": "active"}});
    let response = app.post_json("/api/websocket", &body).await;
    assert_eq!(response.status(), 202);
    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "venue_updates", "data": {"id": "1"}}))
        .await;
    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "vibe_checks:42", "data": {}})).await;
    app.barrier().await;

    assert_eq!(
        fan.events_before(BARRIER).await,
        [("venue_update".to_owned(), json!({"id": "42", "status": "active"}))]
    );
    assert_eq!(all_venues.events_before(BARRIER).await, [("venue_update".to_owned(), json!({"id": "1"}))]);
    assert!(other.events_before(BARRIER).await.is_empty());

    let ack = fan.emit_with_ack("unsubscribe", json!({"channel": "venue:42"})).await;
    assert_eq!(ack["ok"], true);
    app.post_json("/api/websocket", &body).await;
    app.barrier().await;
    assert!(fan.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn private_rooms_and_unknown_channels_cannot_be_subscribed() {
    let app = spawn_app().await;
    let mut c = app.connect(&user_token("u", Some("o1"), Some("t1"))).await;
    for (channel, code) in [
        ("user:someone", "private_channel"),
        ("org:o2", "private_channel"),
        ("tenant:t1", "private_channel"),
        ("tenant:t1:channel:secret", "private_channel"),
        ("invitation:abc", "private_channel"),
        ("user:x:y", "private_channel"),
        ("whatever", "unknown_channel"),
        ("venue:", "unknown_channel"),
        ("", "invalid_channel"),
    ] {
        let ack = c.emit_with_ack("subscribe", json!({"channel": channel})).await;
        assert_eq!(ack["ok"], false, "{channel}");
        assert_eq!(ack["error"]["code"], code, "{channel}: {ack}");
    }
    let ack = c.emit_with_ack("subscribe", json!({"chanel": "venue:1"})).await;
    assert_eq!(ack["error"]["code"], "invalid_payload");
    app.stop().await;
}

#[tokio::test]
async fn channel_patterns_are_configurable() {
    let app = spawn_app_with(&[("CHANNEL_PATTERNS", "scores:{id}=score_update")]).await;
    let mut c = app.connect(&user_token("u", None, None)).await;
    assert_eq!(c.emit_with_ack("subscribe", json!({"channel": "scores:7"})).await["ok"], true);
    assert_eq!(c.emit_with_ack("subscribe", json!({"channel": "venue:7"})).await["error"]["code"], "unknown_channel");
    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "scores:7", "data": 3})).await;
    assert_eq!(c.next_event().await, ("score_update".to_owned(), json!(3)));
    app.stop().await;
}

#[tokio::test]
async fn notify_reaches_every_socket_of_one_user() {
    let app = spawn_app().await;
    let mut tab1 = app.connect(&user_token("user-123", None, None)).await;
    let mut tab2 = app.connect(&user_token("user-123", None, None)).await;
    let mut other = app.connect(&user_token("user-456", None, None)).await;
    let note = json!({"id": "n1", "type": "venue_update", "title": "Venue Updated", "message": "x"});
    let response =
        app.post_json("/api/websocket", &json!({"action": "notify", "userId": "user-123", "data": note})).await;
    assert_eq!(response.status(), 202);
    app.barrier().await;
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(named(&tab.events_before(BARRIER).await, "notification:new"), [&note]);
    }
    assert!(other.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn control_requests_are_validated_with_the_field_named() {
    let app = spawn_app_with(&[("EVENTS_ALLOW_UNKNOWN", "false")]).await;
    for (body, field) in [
        (json!({"channel": "venue:1"}), "action"),
        (json!({"action": "shout", "channel": "venue:1"}), "action"),
        (json!({"action": "broadcast"}), "channel"),
        (json!({"action": "broadcast", "channel": "user:1"}), "channel"),
        (
            json!({"action": "broadcast", "channel": "stores", "event": "store_availability_changed", "data": {"storeId": "s"}}),
            "data.isActive",
        ),
        (json!({"action": "broadcast", "channel": "stores", "event": "made:up"}), "event"),
        (json!({"action": "notify", "data": {}}), "userId"),
        (json!({"action": "notify", "userId": "a b"}), "userId"),
    ] {
        let response = app.post_json("/api/websocket", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error = response.json::<Value>().await.unwrap()["error"].clone();
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    let ok = json!({"action": "broadcast", "channel": "stores", "event": "store_availability_changed", "data": {"storeId": "s", "isActive": false}});
    assert_eq!(app.post_json("/api/websocket", &ok).await.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn status_reports_connections_instance_uptime_and_redis() {
    let app = spawn_app().await;
    let _a = app.connect(&user_token("a", None, None)).await;
    let _b = app.connect(&user_token("b", None, None)).await;
    let status: Value = app.http.get(app.url("/api/websocket")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["connections"], 2);
    assert_eq!(status["redis"], "disabled");
    assert!(status["instanceId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(status["uptimeSeconds"].is_u64());
    assert!(status["rooms"].as_u64().unwrap() >= 4, "two user rooms and two socket rooms: {status}");
    app.stop().await;
}

#[tokio::test]
async fn an_event_sent_right_after_connect_is_always_handled() {
    // The handlers are in place before the client hears `connect`: none of many clients that
    // emit at once loses its first event.
    let app = spawn_app().await;
    let clients = (0..100).map(|i| {
        let addr = app.addr;
        tokio::spawn(async move {
            let token = user_token(&format!("eager-{i}"), None, None);
            let mut c = crate::sio::SioClient::connect(addr, crate::sio::ConnectOptions::auth_token(&token))
                .await
                .unwrap_or_else(|e| panic!("{}", e.message));
            c.emit_with_ack("subscribe", json!({"channel": "stores"})).await
        })
    });
    for client in clients {
        assert_eq!(client.await.unwrap()["ok"], true);
    }
    app.stop().await;
}
