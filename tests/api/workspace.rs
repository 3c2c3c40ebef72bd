//! The workspace contract: project and channel rooms for members, typing, presence, counts.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{BARRIER, TestApp, named, spawn_app, user_token, without_presence};

async fn add_member(app: &TestApp, kind: &str, id: &str, user: &str) {
    let path = format!("/api/tenants/t1/{kind}/{id}/members/{user}");
    assert_eq!(app.put_json(&path, &json!({})).await.status(), 201);
}

#[tokio::test]
async fn members_join_project_rooms_and_others_are_refused() {
    let app = spawn_app().await;
    add_member(&app, "projects", "p1", "alice").await;
    add_member(&app, "projects", "p1", "bob").await;
    let mut alice = app.connect(&user_token("alice", None, Some("t1"))).await;
    let mut bob = app.connect(&user_token("bob", None, Some("t1"))).await;
    let mut mallory = app.connect(&user_token("mallory", None, Some("t1"))).await;

    let ack = alice.emit_with_ack("join-project", json!({"projectId": "p1"})).await;
    assert_eq!(ack, json!({"ok": true, "room": "tenant:t1:project:p1", "members": 1}));
    let ack = bob.emit_with_ack("join-project", json!({"projectId": "p1"})).await;
    assert_eq!(ack["members"], 2);
    let refused = mallory.emit_with_ack("join-project", json!({"projectId": "p1"})).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "forbidden");

    app.publish(json!({"event": "task:created", "to": {"tenant": "t1", "project": "p1"}, "data": {"id": 7}})).await;
    app.barrier().await;
    for member in [&mut alice, &mut bob] {
        assert_eq!(named(&member.events_before(BARRIER).await, "task:created"), [&json!({"id": 7})]);
    }
    assert!(named(&mallory.events_before(BARRIER).await, "task:created").is_empty());

    let left = bob.emit_with_ack("leave-project", json!({"projectId": "p1"})).await;
    assert_eq!(left, json!({"ok": true, "room": "tenant:t1:project:p1"}));
    app.publish(json!({"event": "bug:created", "to": {"tenant": "t1", "project": "p1"}})).await;
    app.barrier().await;
    assert_eq!(named(&alice.events_before(BARRIER).await, "bug:created").len(), 1);
    assert!(without_presence(bob.events_before(BARRIER).await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn workspace_refusals_are_clear() {
    let app = spawn_app().await;
    let mut no_tenant = app.connect(&user_token("u", Some("o"), None)).await;
    let ack = no_tenant.emit_with_ack("join-channel", json!({"channelId": "c1"})).await;
    assert_eq!(ack["error"]["code"], "no_tenant");

    let mut c = app.connect(&user_token("u", None, Some("t1"))).await;
    for payload in [json!({}), json!({"projectId": "a:b"}), json!({"projectId": ["x"]})] {
        let ack = c.emit_with_ack("join-project", payload.clone()).await;
        assert_eq!(ack["error"]["code"], "invalid_payload", "{payload}");
    }
    let ack = c.emit_with_ack("room:members", json!({"room": "tenant:t1:project:p1"})).await;
    assert_eq!(ack["error"]["code"], "not_in_room");
    app.stop().await;
}

#[tokio::test]
async fn typing_reaches_the_other_channel_members_only_and_only_from_members() {
    let app = spawn_app().await;
    add_member(&app, "channels", "general", "alice").await;
    add_member(&app, "channels", "general", "bob").await;
    let mut alice = app.connect(&user_token("alice", None, Some("t1"))).await;
    let mut bob = app.connect(&user_token("bob", None, Some("t1"))).await;
    let mut outsider = app.connect(&user_token("eve", None, Some("t1"))).await;
    for member in [&mut alice, &mut bob] {
        assert_eq!(member.emit_with_ack("join-channel", json!({"channelId": "general"})).await["ok"], true);
    }

    let ack = alice.emit_with_ack("typing:start", json!({"channelId": "general"})).await;
    assert_eq!(ack["ok"], true);
    alice.emit_with_ack("typing:stop", json!({"channelId": "general"})).await;
    let refused = outsider.emit_with_ack("typing:start", json!({"channelId": "general"})).await;
    assert_eq!(refused["error"]["code"], "not_in_room");
    app.barrier().await;

    let bob_events = without_presence(bob.events_before(BARRIER).await);
    assert_eq!(
        bob_events,
        [
            ("typing:start".to_owned(), json!({"channelId": "general", "userId": "alice"})),
            ("typing:stop".to_owned(), json!({"channelId": "general", "userId": "alice"})),
        ]
    );
    assert!(without_presence(alice.events_before(BARRIER).await).is_empty(), "the sender does not hear itself");
    assert!(without_presence(outsider.events_before(BARRIER).await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn room_members_counts_the_sockets_of_a_room_the_asker_is_in() {
    let app = spawn_app().await;
    add_member(&app, "projects", "p1", "a").await;
    add_member(&app, "projects", "p1", "b").await;
    let mut a = app.connect(&user_token("a", None, Some("t1"))).await;
    let mut b = app.connect(&user_token("b", None, Some("t1"))).await;
    a.emit_with_ack("join-project", json!({"projectId": "p1"})).await;
    b.emit_with_ack("join-project", json!({"projectId": "p1"})).await;
    let ack = a.emit_with_ack("room:members", json!({"room": "tenant:t1:project:p1"})).await;
    assert_eq!(ack, json!({"ok": true, "room": "tenant:t1:project:p1", "members": 2}));
    let ack = a.emit_with_ack("room:members", json!("tenant:t1")).await;
    assert_eq!(ack["members"], 2);
    app.stop().await;
}

async fn wait_for_connections(app: &TestApp, user: &str, count: usize) {
    for _ in 0..400 {
        if app.state.presence.connections(user) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{user} never had {count} connections");
}

#[tokio::test]
async fn presence_is_announced_when_the_first_connection_opens_and_the_last_closes() {
    let app = spawn_app().await;
    let mut watcher = app.connect(&user_token("w", Some("o1"), Some("t1"))).await;
    let mut other_org = app.connect(&user_token("x", Some("o9"), Some("t9"))).await;

    let tab1 = app.connect(&user_token("bob", Some("o1"), Some("t1"))).await;
    let tab2 = app.connect(&user_token("bob", Some("o1"), Some("t1"))).await;
    tab1.close().await;
    wait_for_connections(&app, "bob", 1).await;
    app.barrier().await;
    let events = watcher.events_before(BARRIER).await;
    // Once, although bob is in both the org and the tenant room, and once for two tabs.
    assert_eq!(events, [("user:status".to_owned(), json!({"userId": "bob", "status": "online"}))]);

    tab2.close().await;
    wait_for_connections(&app, "bob", 0).await;
    let (name, data) = watcher.next_event().await;
    assert_eq!((name.as_str(), data), ("user:status", json!({"userId": "bob", "status": "offline"})));
    app.barrier().await;
    assert!(watcher.events_before(BARRIER).await.is_empty());
    assert!(other_org.events_before(BARRIER).await.is_empty(), "another org saw bob");
    app.stop().await;
}
