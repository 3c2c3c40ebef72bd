//! The same server on PostgreSQL: a fresh database per test, dropped afterwards.

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::helpers::{BARRIER, named, spawn_app_with, user_token};

/// The server to create test databases on (the machine's PostgreSQL by default).
fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn the_directory_and_auth_work_on_postgresql() {
    let admin = Database::connect(admin_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {} (TEST_POSTGRES_URL): {e}", admin_url()));
    let name = format!("switchyard_test_{}", uuid::Uuid::new_v4().simple());
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (base, _) = admin_url().rsplit_once('/').map(|(b, d)| (b.to_owned(), d.to_owned())).unwrap();
    let url = format!("{base}/{name}");

    let app = spawn_app_with(&[("DATABASE_URL", &url), ("AUTH_REQUIRE_USER", "true")]).await;
    let created = app.put_json("/api/users/pg-user", &json!({"emailVerified": true, "organizationId": "o1"})).await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        app.put_json("/api/invitations/i1", &json!({"status": "pending", "expiresAt": "2031-05-01T10:00:00+02:00"}))
            .await
            .status(),
        201
    );
    let mut c = app.connect(&user_token("pg-user", Some("o1"), None)).await;
    app.publish(json!({"event": "invoice:sent", "to": {"org": "o1"}})).await;
    app.barrier().await;
    assert_eq!(named(&c.events_before(BARRIER).await, "invoice:sent").len(), 1);
    app.stop().await;

    admin.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}
