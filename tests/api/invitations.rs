//! The invitations contract: watching, `POST /invitation-update`, the Redis channels, expiry.

use serde_json::{Value, json};
use switchyard::jobs::invitation_expiry;

use crate::helpers::{
    API_KEY, BARRIER, named, redis_publish, spawn_app, spawn_app_with, test_redis, user_token, without_presence,
};

#[tokio::test]
async fn watchers_receive_an_invitation_update_once_and_others_nothing() {
    let app = spawn_app().await;
    for id in ["inv-1", "inv-2"] {
        assert_eq!(
            app.put_json(&format!("/api/invitations/{id}"), &json!({"organizationId": "o1"})).await.status(),
            201
        );
    }
    let mut by_id = app.connect(&user_token("a", Some("o1"), None)).await;
    let mut by_object = app.connect(&user_token("b", Some("o1"), None)).await;
    let mut by_list = app.connect(&user_token("c", Some("o1"), None)).await;
    let mut bystander = app.connect(&user_token("d", Some("o1"), None)).await;

    for (client, payload) in [
        (&mut by_id, json!("inv-1")),
        (&mut by_object, json!({"invitationId": "inv-1"})),
        (&mut by_list, json!({"invitationIds": ["inv-1", "inv-2"]})),
    ] {
        let ack = client.emit_with_ack("watch-invitation", payload).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    let update = json!({"invitationId": "inv-1", "status": "accepted", "usedAt": "2024-01-01T00:00:00Z"});
    let response = app.post_json("/invitation-update", &update).await;
    assert_eq!(response.status(), 202);
    app.barrier().await;

    for client in [&mut by_id, &mut by_object, &mut by_list] {
        let events = client.events_before(BARRIER).await;
        let got = named(&events, "invitation-update");
        assert_eq!(got.len(), 1, "{events:?}");
        assert_eq!(got[0]["status"], "accepted");
        assert_eq!(got[0]["invitationId"], "inv-1");
        assert_eq!(got[0]["usedAt"], "2024-01-01T00:00:00Z");
    }
    assert!(bystander.events_before(BARRIER).await.is_empty());

    let stored = app.get_json("/api/invitations/inv-1").await;
    assert_eq!(stored["status"], "accepted");
    app.stop().await;
}

#[tokio::test]
async fn a_user_may_not_watch_another_organizations_invitation() {
    let app = spawn_app().await;
    assert_eq!(app.put_json("/api/invitations/theirs", &json!({"organizationId": "o2"})).await.status(), 201);
    assert_eq!(app.put_json("/api/invitations/ours", &json!({"organizationId": "o1"})).await.status(), 201);
    let mut c = app.connect(&user_token("a", Some("o1"), None)).await;

    let refused = c.emit_with_ack("watch-invitation", json!({"invitationIds": ["ours", "theirs"]})).await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "forbidden");
    assert!(refused["error"]["message"].as_str().unwrap().contains("theirs"));

    let ours = c.emit_with_ack("watch-invitation", json!({"invitationId": "ours"})).await;
    assert_eq!(ours["ok"], true);
    for bad in [json!({}), json!({"invitationIds": "x"}), json!(true), json!("a:b")] {
        let ack = c.emit_with_ack("watch-invitation", bad.clone()).await;
        assert_eq!(ack["error"]["code"], "invalid_payload", "{bad}");
    }

    // The refused call joined nothing.
    app.post_json("/invitation-update", &json!({"invitationId": "theirs", "status": "revoked"})).await;
    app.post_json("/invitation-update", &json!({"invitationId": "ours", "status": "revoked"})).await;
    app.barrier().await;
    let events = c.events_before(BARRIER).await;
    let ids: Vec<&Value> = named(&events, "invitation-update").iter().map(|d| &d["invitationId"]).collect();
    assert_eq!(ids, [&json!("ours")]);
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_whose_organization_the_directory_does_not_know_cannot_be_watched() {
    let app = spawn_app().await;
    // Known only from a status update, which names no organization.
    let update = json!({"invitationId": "loose", "status": "pending"});
    assert_eq!(app.post_json("/invitation-update", &update).await.status(), 202);
    let mut c = app.connect(&user_token("a", Some("o1"), None)).await;

    for (payload, named) in [(json!("never-heard-of"), "never-heard-of"), (json!({"invitationId": "loose"}), "loose")] {
        let refused = c.emit_with_ack("watch-invitation", payload).await;
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["error"]["code"], "invitation_unknown");
        assert!(refused["error"]["message"].as_str().unwrap().contains(named), "{refused}");
    }
    // Its history is no more readable than its updates.
    let token = user_token("a", Some("o1"), None);
    let history = app.http.get(app.url("/api/history?room=invitation:loose")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(history.status(), 403);

    app.post_json("/invitation-update", &json!({"invitationId": "loose", "status": "revoked"})).await;
    app.barrier().await;
    assert!(named(&c.events_before(BARRIER).await, "invitation-update").is_empty());

    // Once its backend registers it, its organization may watch it.
    app.put_json("/api/invitations/loose", &json!({"organizationId": "o1"})).await;
    let watched = c.emit_with_ack("watch-invitation", json!("loose")).await;
    assert_eq!(watched["ok"], true, "{watched}");
    app.stop().await;
}

#[tokio::test]
async fn watchers_of_an_invitation_moved_to_another_organization_or_deleted_stop_receiving_it() {
    let app = spawn_app().await;
    for id in ["moving", "deleted"] {
        app.put_json(&format!("/api/invitations/{id}"), &json!({"organizationId": "o1"})).await;
    }
    let mut first_owner = app.connect(&user_token("a", Some("o1"), None)).await;
    let watched = first_owner.emit_with_ack("watch-invitation", json!({"invitationIds": ["moving", "deleted"]})).await;
    assert_eq!(watched["ok"], true, "{watched}");

    let moved = app.put_json("/api/invitations/moving", &json!({"organizationId": "o2"})).await;
    assert_eq!(moved.status(), 200);
    let deleted = app.http.delete(app.url("/api/invitations/deleted")).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let mut new_owner = app.connect(&user_token("b", Some("o2"), None)).await;
    let watched = new_owner.emit_with_ack("watch-invitation", json!("moving")).await;
    assert_eq!(watched["ok"], true, "{watched}");

    for id in ["moving", "deleted"] {
        let update = json!({"invitationId": id, "status": "accepted"});
        assert_eq!(app.post_json("/invitation-update", &update).await.status(), 202);
    }
    app.barrier().await;
    let ids = |events: &[(String, Value)]| -> Vec<Value> {
        named(events, "invitation-update").iter().map(|d| d["invitationId"].clone()).collect()
    };
    assert_eq!(ids(&first_owner.events_before(BARRIER).await), Vec::<Value>::new(), "o1 no longer sees them");
    assert_eq!(ids(&new_owner.events_before(BARRIER).await), [json!("moving")]);
    app.stop().await;
}

#[tokio::test]
async fn unwatching_stops_the_updates() {
    let app = spawn_app().await;
    app.put_json("/api/invitations/i9", &json!({"organizationId": "o1"})).await;
    let mut c = app.connect(&user_token("a", Some("o1"), None)).await;
    let watched = c.emit_with_ack("watch-invitation", json!("i9")).await;
    assert_eq!(watched["ok"], true, "{watched}");
    let ack = c.emit_with_ack("unwatch-invitation", json!({"invitationId": "i9"})).await;
    assert_eq!(ack["ok"], true);
    app.post_json("/invitation-update", &json!({"invitationId": "i9", "status": "expired"})).await;
    app.barrier().await;
    assert!(c.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_bad_invitation_update_names_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    for (body, names) in [
        (json!({"invitationId": "i1", "status": "lost"}), "status"),
        (json!({"invitationId": "i1", "status": "accepted", "revokedAt": "yesterday"}), "revokedAt"),
        (json!({"status": "accepted"}), "invitationId"),
        (json!({"invitationId": "", "status": "accepted"}), "invitationId"),
    ] {
        let response = app.post_json("/invitation-update", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(names), "`{message}` should name {names}");
    }
    let missing = app.http.get(app.url("/api/invitations/i1")).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let unauthenticated = app
        .http
        .post(app.url("/invitation-update"))
        .json(&json!({"invitationId": "i1", "status": "accepted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn redis_invitation_updates_and_notifications_are_delivered_once() {
    let (redis, prefix) = test_redis();
    let app = spawn_app_with(&[("REDIS_URL", &redis), ("REDIS_CHANNEL_PREFIX", &prefix)]).await;
    app.wait_for_redis().await;
    let mut watcher = app.connect(&user_token("w", Some("o1"), None)).await;
    let mut org_mate = app.connect(&user_token("m", Some("o1"), None)).await;
    let mut stranger = app.connect(&user_token("s", Some("o2"), None)).await;
    app.put_json("/api/invitations/r1", &json!({"organizationId": "o1"})).await;
    let watched = watcher.emit_with_ack("watch-invitation", json!("r1")).await;
    assert_eq!(watched["ok"], true, "{watched}");

    let channel = |name: &str| format!("{prefix}{name}");
    redis_publish(&redis, &channel("invitation-updates"), "{not json").await;
    redis_publish(&redis, &channel("invitation-updates"), r#"{"invitationId":"r1","status":"lost"}"#).await;
    redis_publish(
        &redis,
        &channel("invitation-updates"),
        r#"{"invitationId":"r1","status":"revoked","revokedAt":"2024-02-02T10:00:00Z"}"#,
    )
    .await;
    redis_publish(&redis, &channel("notifications"), r#"{"userId":"w","title":"for w"}"#).await;
    redis_publish(&redis, &channel("notifications"), r#"{"organizationId":"o1","title":"for o1"}"#).await;
    redis_publish(&redis, &channel("notifications"), r#"{"title":"for nobody"}"#).await;
    redis_publish(&redis, &channel("switchyard:publish"), r#"{"event":"invoice:paid","to":{"org":"o1"},"data":{}}"#)
        .await;
    // Messages of one channel arrive in order; the barrier goes last on the same connection.
    redis_publish(&redis, &channel("switchyard:publish"), &json!({"event": BARRIER, "to": {"all": true}}).to_string())
        .await;

    let events = without_presence(watcher.events_before(BARRIER).await);
    let updates = named(&events, "invitation-update");
    assert_eq!(updates.len(), 1, "{events:?}");
    assert_eq!(updates[0]["status"], "revoked");
    let titles: Vec<&Value> = named(&events, "notification:new").iter().map(|n| &n["title"]).collect();
    assert_eq!(titles, [&json!("for w"), &json!("for o1")]);
    assert_eq!(named(&events, "invoice:paid").len(), 1);

    let mate = without_presence(org_mate.events_before(BARRIER).await);
    assert_eq!(
        mate.iter().map(|(n, d)| (n.as_str(), d["title"].clone())).collect::<Vec<_>>(),
        [("notification:new", json!("for o1")), ("invoice:paid", Value::Null),]
    );
    assert!(stranger.events_before(BARRIER).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_expiry_job_expires_pending_invitations_once_and_notifies_the_admins() {
    let app = spawn_app().await;
    for (id, role) in [("admin1", "admin"), ("member1", "member")] {
        app.put_json(
            &format!("/api/users/{id}"),
            &json!({"organizationId": "o1", "role": role, "emailVerified": true}),
        )
        .await;
    }
    let past = "2020-01-01T00:00:00Z";
    let future = "2999-01-01T00:00:00Z";
    for (id, status, expires) in [("old", "pending", past), ("fresh", "pending", future), ("used", "accepted", past)] {
        let body =
            json!({"organizationId": "o1", "email": format!("{id}@vendor.io"), "status": status, "expiresAt": expires});
        assert_eq!(app.put_json(&format!("/api/invitations/{id}"), &body).await.status(), 201);
    }
    let mut watcher = app.connect(&user_token("member1", Some("o1"), None)).await;
    watcher.emit_with_ack("watch-invitation", json!({"invitationIds": ["old", "fresh", "used"]})).await;
    let mut admin = app.connect(&user_token("admin1", Some("o1"), None)).await;

    let report = invitation_expiry::run_once(&app.state.db, &app.state.publisher, chrono::Utc::now()).await.unwrap();
    assert_eq!(report.expired, ["old"]);
    assert_eq!(report.admins_notified, 1);
    let again = invitation_expiry::run_once(&app.state.db, &app.state.publisher, chrono::Utc::now()).await.unwrap();
    assert!(again.expired.is_empty(), "a second tick expires nothing twice");
    app.barrier().await;

    let events = watcher.events_before(BARRIER).await;
    let updates = named(&events, "invitation-update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["invitationId"], "old");
    assert_eq!(updates[0]["status"], "expired");
    assert!(named(&events, "notification:new").is_empty(), "members are not notified");
    let admin_events = admin.events_before(BARRIER).await;
    let notes = named(&admin_events, "notification:new");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["data"]["invitationId"], "old");

    for (id, status) in [("old", "expired"), ("fresh", "pending"), ("used", "accepted")] {
        let stored = app.get_json(&format!("/api/invitations/{id}")).await;
        assert_eq!(stored["status"], status, "{id}");
    }
    app.stop().await;
}
