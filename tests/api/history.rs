//! History with offsets, the polling routes, and the notification inbox.

use serde_json::{Value, json};

use crate::helpers::{API_KEY, BARRIER, TestApp, named, spawn_app, spawn_app_with, user_token, without_presence};

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn broadcast(app: &TestApp, channel: &str, data: Value) -> Value {
    let response =
        app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": channel, "data": data})).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

fn offsets(body: &Value) -> Vec<i64> {
    body["items"].as_array().unwrap().iter().map(|i| i["offset"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn venue_polling_returns_each_update_once_in_order_from_an_offset_or_a_time() {
    let app = spawn_app().await;
    let token = user_token("poller", None, None);
    for n in 1..=3 {
        let receipt = broadcast(&app, "venue:42", json!({"n": n})).await;
        assert_eq!(receipt["offset"], n);
    }
    broadcast(&app, "venue:43", json!({"n": 99})).await;

    let (status, all) = get(&app, "/api/venues/42/updates?since=0", &token).await;
    assert_eq!(status, 200);
    assert_eq!(offsets(&all), [1, 2, 3]);
    let items = all["items"].as_array().unwrap();
    assert_eq!(items[0]["event"], "venue_update");
    assert_eq!(items.iter().map(|i| i["data"]["n"].clone()).collect::<Vec<_>>(), [json!(1), json!(2), json!(3)]);
    assert_eq!(all["nextSince"], 3);
    assert_eq!(all["complete"], true);

    let (_, after_two) = get(&app, "/api/venues/42/updates?since=2", &token).await;
    assert_eq!(offsets(&after_two), [3]);
    let (_, page) = get(&app, "/api/venues/42/updates?limit=2", &token).await;
    assert_eq!((offsets(&page), page["nextSince"].clone()), (vec![1, 2], json!(2)));
    let (_, rest) = get(&app, &format!("/api/venues/42/updates?since={}", page["nextSince"]), &token).await;
    assert_eq!(offsets(&rest), [3]);

    let second = items[1]["publishedAt"].as_str().unwrap().to_owned();
    let (_, by_time) = get(&app, &format!("/api/venues/42/updates?since={}", urlencode(&second)), &token).await;
    assert_eq!(offsets(&by_time), [3]);
    let (_, other_venue) = get(&app, "/api/venues/43/updates", &token).await;
    assert_eq!(offsets(&other_venue), [1]);
    app.stop().await;
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn every_venue_route_reads_its_own_channel() {
    let app = spawn_app().await;
    let token = user_token("p", None, None);
    broadcast(&app, "venue_updates", json!({"all": true})).await;
    broadcast(&app, "vibe_checks:7", json!({"vibe": "busy"})).await;
    broadcast(&app, "promotions:7", json!({"pct": 20})).await;
    for (path, event) in [
        ("/api/venues/updates", "venue_update"),
        ("/api/venues/7/vibe-checks", "vibe_check"),
        ("/api/venues/7/promotions", "promotion"),
    ] {
        let (status, body) = get(&app, path, &token).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["items"].as_array().unwrap().len(), 1, "{path}");
        assert_eq!(body["items"][0]["event"], event);
    }
    app.stop().await;
}

#[tokio::test]
async fn polling_requires_a_user_and_reads_only_the_rooms_he_may_read() {
    let app = spawn_app().await;
    app.publish(json!({"event": "invoice:created", "to": {"org": "o1"}, "data": {"n": 1}})).await;
    app.publish(json!({"event": "notification:new", "to": {"user": "alice"}, "data": {"id": "n1"}})).await;
    let alice = user_token("alice", Some("o1"), None);
    let mallory = user_token("mallory", Some("o2"), None);

    let (status, body) = get(&app, "/api/history?room=org:o1", &alice).await;
    assert_eq!((status, offsets(&body)), (200, vec![1]));
    assert_eq!(get(&app, "/api/history?room=user:alice", &alice).await.0, 200);
    for (path, token, status) in [
        ("/api/history?room=org:o1", &mallory, 403),
        ("/api/history?room=user:alice", &mallory, 403),
        ("/api/history?room=tenant:t1:project:p1", &alice, 403),
        ("/api/history?room=org:o1", &API_KEY.to_owned(), 401),
        ("/api/history", &alice, 422),
        ("/api/history?room=org:o1&since=yesterday", &alice, 422),
        ("/api/history?room=org:o1&limit=0", &alice, 422),
    ] {
        let (got, body) = get(&app, path, token).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let anonymous = app.http.get(app.url("/api/venues/updates")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (_, mallory_inbox) = get(&app, "/api/notifications", &mallory).await;
    assert!(mallory_inbox["items"].as_array().unwrap().is_empty(), "another user's notifications leaked");
    app.stop().await;
}

#[tokio::test]
async fn offsets_stay_strictly_increasing_under_concurrent_publishers_and_arrive_in_order() {
    let app = spawn_app().await;
    let mut sub =
        crate::ws::WsClient::connect(app.addr, &format!("/ws?token={}", user_token("s", None, None)), &[]).await;
    sub.ask(json!({"type": "subscribe", "channel": "stores"})).await;
    let publishers: Vec<_> = (0..40)
        .map(|n| {
            let http = app.http.clone();
            let url = app.url("/api/websocket");
            tokio::spawn(async move {
                let body = json!({"action": "broadcast", "channel": "stores", "data": {"storeId": n.to_string()}});
                let r: Value =
                    http.post(url).bearer_auth(API_KEY).json(&body).send().await.unwrap().json().await.unwrap();
                r["offset"].as_i64().unwrap()
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for p in publishers {
        receipts.push(p.await.unwrap());
    }
    receipts.sort();
    assert_eq!(receipts, (1..=40).collect::<Vec<_>>());
    let delivered: Vec<i64> = {
        let mut v = Vec::new();
        for _ in 0..40 {
            v.push(sub.next().await["offset"].as_i64().unwrap());
        }
        v
    };
    assert_eq!(delivered, (1..=40).collect::<Vec<_>>(), "live order is offset order");
    let (_, body) = get(&app, "/api/history?room=stores&limit=1000", &user_token("s", None, None)).await;
    assert_eq!(offsets(&body), (1..=40).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn retention_keeps_the_newest_entries_and_says_when_history_is_incomplete() {
    let app = spawn_app_with(&[("HISTORY_MAX_PER_ROOM", "5")]).await;
    for n in 1..=8 {
        broadcast(&app, "venue:1", json!({"n": n})).await;
    }
    let removed = app.state.history.prune(chrono::Utc::now()).await.unwrap();
    assert_eq!(removed, 3);
    let token = user_token("u", None, None);
    let (_, body) = get(&app, "/api/venues/1/updates?since=0", &token).await;
    assert_eq!(offsets(&body), [4, 5, 6, 7, 8]);
    assert_eq!(body["complete"], false, "offsets 1-3 are gone");
    let (_, recent) = get(&app, "/api/venues/1/updates?since=5", &token).await;
    assert_eq!((offsets(&recent), recent["complete"].clone()), (vec![6, 7, 8], json!(true)));
    // Offsets continue after pruning.
    assert_eq!(broadcast(&app, "venue:1", json!({"n": 9})).await["offset"], 9);
    app.stop().await;
}

#[tokio::test]
async fn an_offline_users_notifications_are_kept_and_delivered_once_when_he_connects() {
    let app = spawn_app().await;
    let note = json!({"id": "n-1", "title": "Invoice paid"});
    app.post_json("/api/websocket", &json!({"action": "notify", "userId": "bob", "data": note})).await;

    let mut tab1 = app.connect(&user_token("bob", None, None)).await;
    assert_eq!(tab1.next_event().await, ("notification:new".to_owned(), note.clone()));
    let mut tab2 = app.connect(&user_token("bob", None, None)).await;
    let mut plain =
        crate::ws::WsClient::connect(app.addr, &format!("/ws?token={}", user_token("bob", None, None)), &[]).await;
    app.barrier().await;
    assert!(without_presence(tab2.events_before(BARRIER).await).is_empty(), "delivered once, not per connection");
    assert!(plain.frames_before(BARRIER).await.is_empty());
    assert!(without_presence(tab1.events_before(BARRIER).await).is_empty());

    // Delivered live now: not kept for the next connection.
    let live = json!({"id": "n-2", "title": "live"});
    app.post_json("/api/websocket", &json!({"action": "notify", "userId": "bob", "data": live})).await;
    app.barrier().await;
    assert_eq!(named(&tab1.events_before(BARRIER).await, "notification:new"), [&live]);
    let mut tab3 = app.connect(&user_token("bob", None, None)).await;
    app.barrier().await;
    assert!(without_presence(tab3.events_before(BARRIER).await).is_empty());

    let (_, inbox) = get(&app, "/api/notifications?since=0", &user_token("bob", None, None)).await;
    let ids: Vec<&Value> = inbox["items"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
    assert_eq!(ids, [&json!("n-1"), &json!("n-2")]);
    app.stop().await;
}

#[tokio::test]
async fn reading_a_notification_marks_it_and_tells_the_users_other_connections() {
    let app = spawn_app().await;
    let mut tab1 = app.connect(&user_token("bob", None, None)).await;
    let mut tab2 = app.connect(&user_token("bob", None, None)).await;
    let mut other = app.connect(&user_token("eve", None, None)).await;
    app.post_json("/api/websocket", &json!({"action": "notify", "userId": "bob", "data": {"id": "n-7"}})).await;
    app.barrier().await;
    tab1.events_before(BARRIER).await;
    tab2.events_before(BARRIER).await;

    assert_eq!(tab1.emit_with_ack("notification:read", json!({"id": "n-7"})).await, json!({"ok": true, "id": "n-7"}));
    let again = tab1.emit_with_ack("notification:read", json!({"id": "n-7"})).await;
    assert_eq!(again["error"]["code"], "not_found");
    let foreign = other.emit_with_ack("notification:read", json!({"id": "n-7"})).await;
    assert_eq!(foreign["error"]["code"], "not_found", "eve cannot read bob's notification");
    app.barrier().await;
    assert_eq!(
        without_presence(tab2.events_before(BARRIER).await),
        [("notification:read".to_owned(), json!({"id": "n-7"}))]
    );
    assert!(without_presence(tab1.events_before(BARRIER).await).is_empty());

    let token = user_token("bob", None, None);
    let (_, unread) = get(&app, "/api/notifications?unread=true", &token).await;
    assert!(unread["items"].as_array().unwrap().is_empty());
    let (_, all) = get(&app, "/api/notifications", &token).await;
    assert_eq!(all["items"][0]["read"], true);
    app.stop().await;
}

#[tokio::test]
async fn a_refusal_quotes_only_a_short_prefix_of_a_long_input() {
    let app = spawn_app().await;
    let since = "y".repeat(10_000);
    let (status, body) =
        get(&app, &format!("/api/history?room=org:o1&since={since}"), &user_token("a", None, None)).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("since")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("since: `{}…`", &since[..64])), "{message}");
    assert!(message.len() < 200, "{} characters: {message}", message.len());
    app.stop().await;
}
