//! `POST /api/events` (and `/api/events/batch`) reach exactly the sockets they name, exactly once.

use serde_json::{Value, json};

use crate::helpers::{API_KEY, BARRIER, named, spawn_app, user_token, without_presence};
use crate::sio::ConnectOptions;

#[tokio::test]
async fn org_publish_reaches_each_socket_of_the_org_once_and_no_other_org() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", Some("42"), None)).await;
    let mut alice_tab2 = app.connect(&user_token("alice", Some("42"), None)).await;
    let mut bob = app.connect(&user_token("bob", Some("42"), None)).await;
    let mut eve = app.connect(&user_token("eve", Some("7"), None)).await;

    let receipt =
        app.publish(json!({"event": "invoice:created", "to": {"org": "42"}, "data": {"invoiceId": "inv-1"}})).await;
    assert_eq!(receipt["event"], "invoice:created");
    assert_eq!(receipt["rooms"], json!(["org:42"]));
    assert!(receipt["id"].as_str().is_some_and(|id| !id.is_empty()));
    app.barrier().await;

    for socket in [&mut alice, &mut alice_tab2, &mut bob] {
        let events = without_presence(socket.events_before(BARRIER).await);
        assert_eq!(named(&events, "invoice:created"), [&json!({"invoiceId": "inv-1"})]);
        assert_eq!(events.len(), 1, "nothing else arrives: {events:?}");
    }
    assert!(eve.events_before(BARRIER).await.is_empty(), "another org received it");
    app.stop().await;
}

#[tokio::test]
async fn numeric_org_ids_address_the_same_room_as_strings() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", Some("42"), None)).await;
    app.publish(json!({"event": "expense:approved", "to": {"org": 42}, "data": 1})).await;
    app.barrier().await;
    assert_eq!(named(&alice.events_before(BARRIER).await, "expense:approved").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn user_publish_reaches_every_tab_of_that_user_only() {
    let app = spawn_app().await;
    let mut tab1 = app.connect(&user_token("u1", Some("1"), None)).await;
    let mut tab2 = app.connect(&user_token("u1", Some("1"), None)).await;
    let mut other = app.connect(&user_token("u2", Some("1"), None)).await;

    app.publish(json!({"event": "notification:new", "to": {"user": "u1"}, "data": {"title": "hi"}})).await;
    app.barrier().await;

    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(named(&tab.events_before(BARRIER).await, "notification:new"), [&json!({"title": "hi"})]);
    }
    assert!(other.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn except_leaves_out_the_named_user() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", Some("42"), None)).await;
    let mut bob = app.connect(&user_token("bob", Some("42"), None)).await;

    app.publish(json!({
        "event": "document:uploaded", "to": {"org": "42"}, "except": {"user": "bob"}, "data": {}
    }))
    .await;
    app.barrier().await;

    assert_eq!(named(&alice.events_before(BARRIER).await, "document:uploaded").len(), 1);
    assert!(bob.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn tenant_and_several_targets_are_delivered_once_to_a_socket_in_both() {
    let app = spawn_app().await;
    let mut member = app.connect(&user_token("m", Some("o1"), Some("t1"))).await;
    let mut outsider = app.connect(&user_token("x", Some("o2"), Some("t2"))).await;

    // The socket is in both rooms: Socket.IO semantics deliver a multi-room emit once.
    app.publish(json!({"event": "task:created", "to": {"tenant": "t1", "org": "o1"}, "data": {"id": 1}})).await;
    app.barrier().await;

    assert_eq!(named(&member.events_before(BARRIER).await, "task:created").len(), 1);
    assert!(outsider.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_socket_id_addresses_exactly_that_socket() {
    let app = spawn_app().await;
    let mut tab1 = app.connect(&user_token("u1", None, None)).await;
    let mut tab2 = app.connect(&user_token("u1", None, None)).await;

    app.publish(json!({"event": "hr:leave_approved", "to": {"socket": tab2.sid}, "data": {}})).await;
    app.barrier().await;

    assert!(tab1.events_before(BARRIER).await.is_empty());
    assert_eq!(named(&tab2.events_before(BARRIER).await, "hr:leave_approved").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn publishing_needs_an_api_key_and_refuses_user_tokens() {
    let app = spawn_app().await;
    let body = json!({"event": "invoice:created", "to": {"org": "1"}});
    let url = app.url("/api/events");

    let none = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.json::<serde_json::Value>().await.unwrap()["error"]["code"], "api_key_missing");

    let wrong = app.http.post(&url).header("x-api-key", "nope").json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<serde_json::Value>().await.unwrap()["error"]["code"], "api_key_invalid");

    let user = user_token("alice", Some("1"), None);
    let as_user = app.http.post(&url).bearer_auth(&user).json(&body).send().await.unwrap();
    assert_eq!(as_user.status(), 403);
    assert_eq!(as_user.json::<serde_json::Value>().await.unwrap()["error"]["code"], "user_token_refused");

    let with_header = app.http.post(&url).header("x-api-key", API_KEY).json(&body).send().await.unwrap();
    assert_eq!(with_header.status(), 202);
    app.stop().await;
}

#[tokio::test]
async fn bad_publish_requests_get_a_4xx_that_names_the_problem_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", Some("42"), None)).await;

    let raw = app
        .http
        .post(app.url("/api/events"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{\"event\": \"x\", \"to\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<serde_json::Value>().await.unwrap()["error"]["code"], "invalid_json");

    let cases = [
        (json!({"to": {"org": "1"}}), 400, "event"),
        (json!({"event": "a", "to": {"team": "1"}}), 400, "team"),
        (json!({"event": "a", "to": {"org": "1"}, "extra": true}), 400, "extra"),
        (json!({"event": "a", "to": {}}), 422, "to"),
        (json!({"event": "disconnect", "to": {"org": "1"}}), 422, "event"),
        (json!({"event": "", "to": {"org": "1"}}), 422, "event"),
        (json!({"event": "a", "to": {"project": "p"}}), 422, "to.project"),
        (json!({"event": "a", "to": {"user": "a:b"}}), 422, "to.user"),
        (json!({"event": "a", "to": {"org": {"id": 1}}}), 400, "to.org"),
        (json!({"event": "a", "to": {"all": true, "org": "1"}}), 422, "to.all"),
        (json!({"event": "a", "to": {"channel": "org:1"}}), 422, "to.channel"),
    ];
    for (body, status, names) in cases {
        let response = app.post_json("/api/events", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error = response.json::<serde_json::Value>().await.unwrap()["error"].clone();
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(names), "{body}: `{message}` should name `{names}`");
    }

    // Nothing above was delivered, and the server still delivers.
    app.publish(json!({"event": "invoice:paid", "to": {"org": "42"}})).await;
    app.barrier().await;
    let events = without_presence(alice.events_before(BARRIER).await);
    assert_eq!(events.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["invoice:paid"]);
    app.stop().await;
}

#[tokio::test]
async fn the_catalogue_refuses_unknown_events_and_bad_documented_payloads() {
    let app = crate::helpers::spawn_app_with(&[("EVENTS_ALLOW_UNKNOWN", "false")]).await;
    for (body, field) in [
        (json!({"event": "invoice:exploded", "to": {"org": "1"}}), "event"),
        (
            json!({"event": "invitation-update", "to": {"invitation": "i"}, "data": {"invitationId": "i", "status": "lost"}}),
            "data.status",
        ),
        (json!({"event": "order_updated", "to": {"user": "c"}, "data": {"order": {}}}), "data.orderId"),
        (json!({"event": "user:status", "to": {"org": "1"}, "data": {"userId": "u", "status": "away"}}), "data.status"),
    ] {
        let response = app.post_json("/api/events", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"]["field"], field, "{body}");
    }
    for body in [
        json!({"event": "invoice:created", "to": {"org": "1"}, "data": {"anything": true}}),
        json!({"event": "order_updated", "to": {"user": "c"}, "data": {"orderId": 5, "order": {"status": "ready"}}}),
    ] {
        assert_eq!(app.post_json("/api/events", &body).await.status(), 202, "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_batch_is_published_in_order_and_each_item_answered_in_its_place() {
    let app = spawn_app().await;
    let mut alice = app.connect(&user_token("alice", Some("42"), None)).await;
    let mut eve = app.connect(&user_token("eve", Some("7"), None)).await;

    let batch = json!({"events": [
        {"event": "invoice:created", "to": {"org": "42"}, "data": {"n": 1}},
        {"event": "user:status", "to": {"org": "42"}, "data": {"userId": "u", "status": "away"}},
        {"event": "invoice:created", "to": {"team": "42"}, "data": {"n": 3}},
        {"event": "invoice:created", "to": {"org": "42"}, "data": {"n": 4}},
        {"event": "invoice:created", "to": {"user": "alice"}, "data": {"n": 5}},
    ]});
    let response = app.post_json("/api/events/batch", &batch).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let results = body["results"].as_array().expect("results");
    let statuses: Vec<u64> = results.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [202, 422, 400, 202, 202]);
    assert_eq!(results[0]["receipt"]["rooms"], json!(["org:42"]));
    assert_eq!(results[1]["error"]["field"], "data.status");
    assert_eq!(results[2]["error"]["code"], "invalid_body");
    assert!(results[2]["error"]["message"].as_str().unwrap().starts_with("events[2]: "), "{body}");
    assert!(results[2]["error"]["message"].as_str().unwrap().contains("to.team: unknown field `team`"), "{body}");
    assert_eq!(results[4]["receipt"]["rooms"], json!(["user:alice"]));
    app.barrier().await;

    // The accepted ones, exactly once each, in the batch's order; nothing to another org.
    let events = without_presence(alice.events_before(BARRIER).await);
    assert_eq!(named(&events, "invoice:created"), [&json!({"n": 1}), &json!({"n": 4}), &json!({"n": 5})]);
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(eve.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_batch_too_large_or_without_a_key_is_refused_whole() {
    let app = spawn_app().await;
    let item = json!({"event": "invoice:created", "to": {"org": "1"}});
    let too_many = json!({"events": vec![item.clone(); 1001]});
    let response = app.post_json("/api/events/batch", &too_many).await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "events", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 1000"), "{body}");

    let anonymous = reqwest::Client::new()
        .post(app.url("/api/events/batch"))
        .json(&json!({"events": [item]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let malformed = app.post_json("/api/events/batch", &json!({"event": "x"})).await;
    assert_eq!(malformed.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn switchyards_own_rooms_cannot_be_addressed_by_a_backend() {
    let app = spawn_app().await;
    // Opted into recovery, so in `switchyard#recovering` with every other opted-in socket.
    let auth = json!({"token": user_token("tracked", Some("another-org"), None), "offset": ""});
    let mut tracked = app.connect_with(ConnectOptions { auth: Some(auth), ..Default::default() }).await.unwrap();

    let own = "switchyard#recovering";
    let cases = [
        (json!({"event": "leak", "to": {"rooms": ["org:42", own]}}), "to.rooms"),
        (json!({"event": "leak", "to": {"socket": own}}), "to.socket"),
        (json!({"event": "leak", "to": {"channel": own}}), "to.channel"),
        (json!({"event": "leak", "to": {"all": true}, "except": {"rooms": own}}), "except.rooms"),
    ];
    for (body, field) in cases {
        let response = app.post_json("/api/events", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error = response.json::<Value>().await.unwrap()["error"].clone();
        assert_eq!((error["code"].as_str(), error["field"].as_str()), (Some("invalid_field"), Some(field)), "{body}");

        let batch: Value = app.post_json("/api/events/batch", &json!({"events": [body]})).await.json().await.unwrap();
        let item = &batch["results"][0];
        assert_eq!((item["status"].as_u64(), item["error"]["field"].as_str()), (Some(422), Some(field)), "{body}");
    }

    app.barrier().await;
    let events = tracked.events_before(BARRIER).await;
    assert!(named(&events, "leak").is_empty(), "{events:?}");
    app.stop().await;
}
