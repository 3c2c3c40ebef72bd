//! The directory API: users, memberships, invitations.

use serde_json::{Value, json};
use switchyard::publication::{Audience, RoomAction, RoomOp};

use crate::helpers::{API_KEY, BARRIER, named, spawn_app, user_token};

#[tokio::test]
async fn users_are_created_replaced_read_and_deleted() {
    let app = spawn_app().await;
    let body =
        json!({"email": "a@x.io", "emailVerified": true, "organizationId": 42, "tenantId": "t1", "role": "admin"});
    let created = app.put_json("/api/users/alice", &body).await;
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.unwrap();
    assert_eq!(user["organizationId"], "42");
    assert_eq!(user["emailVerified"], true);

    let replaced = app.put_json("/api/users/alice", &json!({"email": "a@y.io"})).await;
    assert_eq!(replaced.status(), 200);
    let read = app.get_json("/api/users/alice").await;
    assert_eq!(read["email"], "a@y.io");
    assert_eq!(read["role"], Value::Null, "PUT replaces the whole record");

    let delete = || app.http.delete(app.url("/api/users/alice")).bearer_auth(API_KEY).send();
    assert_eq!(delete().await.unwrap().status(), 204);
    let again = delete().await.unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(again.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn memberships_are_put_listed_and_deleted_for_projects_and_channels() {
    let app = spawn_app().await;
    for kind in ["projects", "channels"] {
        let path = format!("/api/tenants/t1/{kind}/r1/members/u1");
        assert_eq!(app.put_json(&path, &json!({"role": "editor"})).await.status(), 201);
        assert_eq!(app.put_json(&path, &json!({})).await.status(), 200);
        let list = app.get_json(&format!("/api/tenants/t1/{kind}/r1/members")).await;
        assert_eq!(list["members"].as_array().unwrap().len(), 1);
        assert_eq!(list["members"][0]["userId"], "u1");
        let deleted = app.http.delete(app.url(&path)).bearer_auth(API_KEY).send().await.unwrap();
        assert_eq!(deleted.status(), 204);
    }
    let other = app.put_json("/api/tenants/t1/teams/r1/members/u1", &json!({})).await;
    assert_eq!(other.status(), 404);
    let bad_id = app.put_json("/api/tenants/t1/projects/a:b/members/u1", &json!({})).await;
    assert_eq!(bad_id.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_membership_takes_the_users_live_sockets_out_of_the_room() {
    let app = spawn_app().await;
    let path = "/api/tenants/t1/projects/p1/members/u1";
    assert_eq!(app.put_json(path, &json!({})).await.status(), 201);
    let mut member = app.connect(&user_token("u1", None, Some("t1"))).await;
    let mut other = app.connect(&user_token("u2", None, Some("t1"))).await;
    // Put both in the project room as a join would.
    let both = Audience::from_names(&["user:u1".into(), "user:u2".into()], &[]);
    let join = RoomAction::Join(vec!["tenant:t1:project:p1".into()]);
    app.state.publisher.apply(RoomOp { target: both, action: join }).await;

    let task = json!({"event": "task:updated", "to": {"tenant": "t1", "project": "p1"}, "data": {}});
    app.publish(task.clone()).await;
    app.barrier().await;
    assert_eq!(named(&member.events_before(BARRIER).await, "task:updated").len(), 1);
    assert_eq!(named(&other.events_before(BARRIER).await, "task:updated").len(), 1);

    let deleted = app.http.delete(app.url(path)).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    app.publish(task).await;
    app.barrier().await;
    assert!(member.events_before(BARRIER).await.is_empty(), "removed member still in the room");
    assert_eq!(named(&other.events_before(BARRIER).await, "task:updated").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn invitations_are_validated_and_stored() {
    let app = spawn_app().await;
    let good =
        json!({"organizationId": "o1", "email": "v@x.io", "status": "pending", "expiresAt": "2030-01-01T00:00:00Z"});
    assert_eq!(app.put_json("/api/invitations/inv-1", &good).await.status(), 201);
    let read = app.get_json("/api/invitations/inv-1").await;
    assert_eq!(read["status"], "pending");
    assert_eq!(read["organizationId"], "o1");

    for (body, names) in
        [(json!({"status": "lost"}), "status"), (json!({"status": "accepted", "expiresAt": "tomorrow"}), "expiresAt")]
    {
        let response = app.put_json("/api/invitations/inv-1", &body).await;
        assert_eq!(response.status(), 400);
        let message = response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(names), "`{message}` should name {names}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_directory_needs_an_api_key() {
    let app = spawn_app().await;
    let response = app
        .http
        .put(app.url("/api/users/x"))
        .bearer_auth(user_token("x", None, None))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = app.http.get(app.url("/api/invitations/x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}
