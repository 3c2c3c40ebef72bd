//! Plain WebSocket clients: `/ws` (venue channels) and `/api/ws` (commerce).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{BARRIER, TestApp, named, spawn_app, spawn_app_with, user_token};
use crate::ws::WsClient;

async fn ws(app: &TestApp, path: &str, token: &str) -> WsClient {
    WsClient::connect(app.addr, &format!("{path}?token={token}"), &[]).await
}

#[tokio::test]
async fn channel_subscribers_get_deliveries_with_channel_id_and_offset() {
    let app = spawn_app().await;
    let mut fan = ws(&app, "/ws", &user_token("fan", None, None)).await;
    let mut other = ws(&app, "/ws", &user_token("other", None, None)).await;
    assert_eq!(
        fan.ask(json!({"type": "subscribe", "channel": "venue:42"})).await,
        json!({"type": "subscribed", "channel": "venue:42"})
    );
    assert_eq!(fan.ask(json!({"type": "ping"})).await, json!({"type": "pong"}));
    assert_eq!(other.ask(json!({"type": "subscribe", "channel": "venue:43"})).await["type"], "subscribed");

    let body = json!({"action": "broadcast", "channel": "venue:42", "data": {"id": "42", "name": "Blue Note"}});
    let receipt: Value = app.post_json("/api/websocket", &body).await.json().await.unwrap();
    app.barrier().await;
    let frames = fan.frames_before(BARRIER).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "venue_update");
    assert_eq!(frames[0]["channel"], "venue:42");
    assert_eq!(frames[0]["data"], json!({"id": "42", "name": "Blue Note"}));
    assert_eq!(frames[0]["id"], receipt["id"]);
    assert_eq!(frames[0]["offset"], 1);
    assert_eq!(receipt["offset"], 1);
    assert!(other.frames_before(BARRIER).await.is_empty());

    assert_eq!(
        fan.ask(json!({"type": "unsubscribe", "channel": "venue:42"})).await,
        json!({"type": "unsubscribed", "channel": "venue:42"})
    );
    app.post_json("/api/websocket", &body).await;
    app.barrier().await;
    assert!(fan.frames_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn refusals_are_error_frames_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let mut c = ws(&app, "/ws", &user_token("u", Some("o1"), None)).await;
    for (request, code) in [
        (json!({"type": "subscribe", "channel": "user:someone"}), "private_channel"),
        (json!({"type": "subscribe", "channel": "org:o1"}), "private_channel"),
        (json!({"type": "subscribe", "channel": "nope"}), "unknown_channel"),
        (json!({"type": "subscribe"}), "invalid_message"),
        (json!({"type": "dance"}), "unknown_type"),
        (json!({"channel": "venue:1"}), "invalid_message"),
    ] {
        let answer = c.ask(request.clone()).await;
        assert_eq!(answer["type"], "error", "{request}");
        assert_eq!(answer["code"], code, "{request}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send_text("{not json").await;
    assert_eq!(c.next().await["code"], "invalid_json");
    assert_eq!(c.ask(json!({"type": "ping"})).await, json!({"type": "pong"}));
    assert_eq!(c.ask(json!({"type": "subscribe", "channel": "venue_updates"})).await["type"], "subscribed");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_without_a_valid_token_is_told_why_and_closed() {
    let app = spawn_app().await;
    let mut anonymous = WsClient::connect(app.addr, "/ws", &[]).await;
    let error = anonymous.next().await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("token_missing")));
    let closed = anonymous.closed().await;
    assert_eq!(closed.code, Some(1008));
    assert_eq!(closed.reason, "token_missing");

    let mut forged = WsClient::connect(app.addr, "/ws?token=a.b.c", &[]).await;
    assert_eq!(forged.next().await["code"], "token_malformed");

    let header = [("authorization", format!("Bearer {}", user_token("h", None, None)))];
    let mut by_header = WsClient::connect(app.addr, "/ws", &header).await;
    assert_eq!(by_header.ask(json!({"type": "ping"})).await["type"], "pong");
    app.stop().await;
}

#[tokio::test]
async fn commerce_orders_reach_their_customer_stores_everyone_products_the_store_subscribers() {
    let app = spawn_app().await;
    let mut c1 = ws(&app, "/api/ws", &user_token("c1", None, None)).await;
    let mut c2 = ws(&app, "/api/ws", &user_token("c2", None, None)).await;
    let subscribed = c2.ask(json!({"type": "subscribe", "channel": "store:9"})).await;
    assert_eq!(subscribed["type"], "subscribed");

    let order = json!({"orderId": "o-1", "order": {"status": "ready"}});
    app.publish(json!({"event": "order_updated", "to": {"user": "c1"}, "data": order})).await;
    let store = json!({"storeId": "9", "store": {"name": "Corner"}});
    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "stores", "data": store})).await;
    let product = json!({"storeId": "9", "product": {"sku": "x"}});
    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "store:9", "data": product})).await;
    app.barrier().await;

    assert_eq!(
        c1.frames_before(BARRIER).await,
        [json!({"type": "order_updated", "data": order}), json!({"type": "store_updated", "data": store})]
    );
    assert_eq!(
        c2.frames_before(BARRIER).await,
        [json!({"type": "store_updated", "data": store}), json!({"type": "product_updated", "data": product})]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_commerce_user_query_must_match_the_token_unless_development_allows_it() {
    let app = spawn_app().await;
    let token = user_token("c1", None, None);
    let mut matching =
        WsClient::connect(app.addr, &format!("/api/ws?userId=c1&role=customer&token={token}"), &[]).await;
    assert_eq!(matching.ask(json!({"type": "ping"})).await["type"], "pong");
    let mut mismatch =
        WsClient::connect(app.addr, &format!("/api/ws?userId=c2&role=customer&token={token}"), &[]).await;
    assert_eq!(mismatch.next().await["code"], "user_mismatch");
    let mut no_token = WsClient::connect(app.addr, "/api/ws?userId=c1&role=customer", &[]).await;
    assert_eq!(no_token.next().await["code"], "token_missing");
    app.stop().await;

    let dev = spawn_app_with(&[("WS_ALLOW_USER_QUERY", "true")]).await;
    let mut insecure = WsClient::connect(dev.addr, "/api/ws?userId=c1&role=customer", &[]).await;
    dev.publish(json!({"event": "order_updated", "to": {"user": "c1"}, "data": {"orderId": 1}})).await;
    assert_eq!(insecure.next().await, json!({"type": "order_updated", "data": {"orderId": 1}}));
    dev.stop().await;
}

#[tokio::test]
async fn one_publication_reaches_socketio_and_plain_websocket_subscribers_once_each() {
    let app = spawn_app().await;
    let mut sio = app.connect(&user_token("s", Some("o1"), None)).await;
    assert_eq!(sio.emit_with_ack("subscribe", json!({"channel": "promotions:5"})).await["ok"], true);
    let mut plain = ws(&app, "/ws", &user_token("p", Some("o1"), None)).await;
    plain.ask(json!({"type": "subscribe", "channel": "promotions:5"})).await;

    app.post_json("/api/websocket", &json!({"action": "broadcast", "channel": "promotions:5", "data": {"pct": 10}}))
        .await;
    app.publish(json!({"event": "invoice:created", "to": {"org": "o1"}, "data": {"n": 1}})).await;
    app.barrier().await;

    let events = crate::helpers::without_presence(sio.events_before(BARRIER).await);
    assert_eq!(named(&events, "promotion"), [&json!({"pct": 10})]);
    assert_eq!(named(&events, "invoice:created"), [&json!({"n": 1})]);
    let frames = plain.frames_before(BARRIER).await;
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["promotion", "invoice:created"]);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_and_the_others_get_everything_in_order() {
    let app = spawn_app_with(&[("WS_SEND_QUEUE", "8"), ("HISTORY_ROOMS", "none")]).await;
    let mut slow = ws(&app, "/ws", &user_token("slow", None, None)).await;
    let mut fast = ws(&app, "/ws", &user_token("fast", None, None)).await;
    slow.ask(json!({"type": "subscribe", "channel": "venue:1"})).await;
    fast.ask(json!({"type": "subscribe", "channel": "venue:1"})).await;
    assert_eq!(app.state.hub.plain().connections(), 2);

    // The slow client reads nothing: kernel buffers fill, then its queue of 8, then it is cut.
    let blob = "x".repeat(64 * 1024);
    let total = 200;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < total {
            seen.push(fast.next().await["data"]["n"].as_u64().unwrap());
        }
        seen
    });
    for n in 0..total {
        let body = json!({"action": "broadcast", "channel": "venue:1", "data": {"n": n, "blob": blob}});
        assert_eq!(app.post_json("/api/websocket", &body).await.status(), 202);
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (0..total as u64).collect::<Vec<_>>(), "the fast client got everything once, in order");
    for _ in 0..200 {
        if app.state.hub.plain().connections() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.state.hub.plain().connections(), 1, "the slow consumer is gone");
    let _ = slow.closed().await;
    app.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_by_the_heartbeat() {
    let app = spawn_app_with(&[("WS_PING_INTERVAL", "100ms")]).await;
    let mut silent = ws(&app, "/ws", &user_token("quiet", None, None)).await;
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let closed = silent.closed().await;
    assert_eq!(closed.code, Some(1001));
    assert_eq!(closed.reason, "ping timeout");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_plain_websockets_with_a_restart_code() {
    let app = spawn_app().await;
    let mut c = ws(&app, "/ws", &user_token("u", None, None)).await;
    assert_eq!(c.ask(json!({"type": "ping"})).await["type"], "pong");
    let stopping = tokio::spawn(app.stop());
    let closed = c.closed().await;
    assert_eq!(closed.code, Some(1012));
    stopping.await.unwrap();
}
