//! Connect-time authentication: the three token sources in order, every refusal with its code.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{BARRIER, SECRET, TestApp, claims, named, sign, sign_with, spawn_app, spawn_app_with, user_token};
use crate::sio::ConnectOptions;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn refusal(app: &TestApp, options: ConnectOptions) -> String {
    match app.connect_with(options).await {
        Ok(_) => panic!("connection should have been refused"),
        Err(e) => e.message,
    }
}

async fn refusal_for(app: &TestApp, token: &str) -> String {
    refusal(app, ConnectOptions::auth_token(token)).await
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Proves which rooms a socket is in by publishing to each and to one it is not in.
async fn assert_in_rooms(app: &TestApp, client: &mut crate::sio::SioClient, rooms: &[&str]) {
    for room in rooms {
        app.publish(json!({"event": "probe", "to": {"rooms": [room]}, "data": room})).await;
    }
    app.publish(json!({"event": "probe", "to": {"rooms": ["org:not-mine"]}, "data": "org:not-mine"})).await;
    app.barrier().await;
    let events = client.events_before(BARRIER).await;
    let got: Vec<&str> = named(&events, "probe").iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(got, rooms);
}

#[tokio::test]
async fn handshake_auth_token_connects_into_user_org_tenant_and_own_socket_rooms() {
    let app = spawn_app().await;
    let mut c = app.connect(&user_token("u1", Some("o1"), Some("t1"))).await;
    let sid = c.sid.clone();
    assert_in_rooms(&app, &mut c, &["user:u1", "org:o1", "tenant:t1", &sid]).await;
    app.stop().await;
}

#[tokio::test]
async fn org_id_claim_alias_and_missing_optional_claims() {
    let app = spawn_app().await;
    let mut extra = serde_json::to_value(claims("u2")).unwrap();
    extra["orgId"] = json!(77);
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &extra, &EncodingKey::from_secret(SECRET.as_bytes()))
            .unwrap();
    let mut c = app.connect(&token).await;
    assert_in_rooms(&app, &mut c, &["user:u2", "org:77"]).await;

    let mut bare = app.connect(&sign(&claims("u3"))).await;
    assert_in_rooms(&app, &mut bare, &["user:u3"]).await;
    app.stop().await;
}

#[tokio::test]
async fn authorization_header_and_query_parameter_are_token_sources_too() {
    let app = spawn_app().await;
    let header = ConnectOptions {
        headers: vec![("authorization".into(), format!("Bearer {}", user_token("h", Some("o"), None)))],
        ..Default::default()
    };
    let mut by_header = app.connect_with(header).await.expect("header token accepted");
    assert_in_rooms(&app, &mut by_header, &["user:h", "org:o"]).await;

    let query = ConnectOptions { query: vec![("token".into(), user_token("q", None, None))], ..Default::default() };
    let mut by_query = app.connect_with(query).await.expect("query token accepted");
    assert_in_rooms(&app, &mut by_query, &["user:q"]).await;
    app.stop().await;
}

#[tokio::test]
async fn the_first_token_source_wins_auth_then_header_then_query() {
    let app = spawn_app().await;
    let good = user_token("good", None, None);
    let forged = sign_with("some-other-secret-0123456789abcdef", &claims("forged"));

    // auth.token is read first: a good one wins over a forged header.
    let options = ConnectOptions {
        auth: Some(json!({"token": good})),
        headers: vec![("authorization".into(), format!("Bearer {forged}"))],
        ..Default::default()
    };
    let mut c = app.connect_with(options).await.expect("auth.token wins");
    assert_in_rooms(&app, &mut c, &["user:good"]).await;

    // A forged header is read before a good query parameter, and refused.
    let options = ConnectOptions {
        headers: vec![("authorization".into(), format!("Bearer {forged}"))],
        query: vec![("token".into(), good.clone())],
        ..Default::default()
    };
    assert!(refusal(&app, options).await.starts_with("token_bad_signature:"));
    app.stop().await;
}

#[tokio::test]
async fn every_refusal_states_its_cause_with_a_stable_code_and_no_secret() {
    let app = spawn_app().await;
    let mut expired = claims("u");
    expired.exp = chrono::Utc::now().timestamp() - 3600;
    let header_none = b64(&json!({"alg": "none", "typ": "JWT"}));
    let payload = b64(&serde_json::to_value(claims("u")).unwrap());
    let alg_none = format!("{header_none}.{payload}.");
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let numeric_sub = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": 5, "exp": chrono::Utc::now().timestamp() + 60}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();

    assert!(refusal(&app, ConnectOptions::default()).await.starts_with("token_missing: "));
    let cases = [
        ("not-a-jwt".to_owned(), "token_malformed"),
        ("a.b.c".to_owned(), "token_malformed"),
        (sign(&expired), "token_expired"),
        (sign_with("another-secret-0123456789abcdef01", &claims("u")), "token_bad_signature"),
        (alg_none, "token_algorithm_refused"),
        (no_exp, "token_invalid_claims"),
        (numeric_sub, "token_invalid_claims"),
    ];
    for (token, code) in cases {
        let message = refusal_for(&app, &token).await;
        assert!(message.starts_with(&format!("{code}: ")), "{code}: got `{message}`");
        assert!(message.len() > code.len() + 10, "a sentence follows the code: {message}");
        assert!(!message.contains(SECRET));
    }

    // The server still serves everyone else.
    app.connect(&user_token("fine", None, None)).await;
    app.stop().await;
}

#[tokio::test]
async fn require_user_refuses_unknown_and_unverified_users() {
    let app = spawn_app_with(&[("AUTH_REQUIRE_USER", "true")]).await;
    for (id, verified) in [("verified", true), ("unverified", false)] {
        let body = json!({"email": format!("{id}@x.io"), "emailVerified": verified});
        assert_eq!(app.put_json(&format!("/api/users/{id}"), &body).await.status(), 201);
    }

    assert!(refusal_for(&app, &user_token("ghost", None, None)).await.starts_with("user_unknown: "));
    assert!(refusal_for(&app, &user_token("unverified", None, None)).await.starts_with("email_unverified: "));
    app.connect(&user_token("verified", None, None)).await;
    app.stop().await;
}

#[tokio::test]
async fn rs256_public_key_verifies_and_an_hs256_token_signed_with_that_key_is_refused() {
    let public_key = fixture("rsa-public.pem");
    let app = spawn_app_with(&[("JWT_PUBLIC_KEY_FILE", &public_key), ("JWT_SECRET", "")]).await;
    let private = std::fs::read(fixture("rsa-private.pem")).unwrap();
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("rsa-user"),
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    let mut c = app.connect(&rs256).await;
    assert_in_rooms(&app, &mut c, &["user:rsa-user"]).await;

    // Algorithm confusion: the public key used as an HMAC secret.
    let public_pem = std::fs::read(&public_key).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("attacker"),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert!(refusal_for(&app, &confused).await.starts_with("token_algorithm_refused: "));
    app.stop().await;
}

#[tokio::test]
async fn es256_public_key_verifies_beside_an_hs256_secret() {
    let app = spawn_app_with(&[("JWT_PUBLIC_KEY_FILE", &fixture("ec-public.pem"))]).await;
    let private = std::fs::read(fixture("ec-private.pem")).unwrap();
    let es256 = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("ec-user"),
        &EncodingKey::from_ec_pem(&private).unwrap(),
    )
    .unwrap();
    app.connect(&es256).await;
    app.connect(&user_token("hs-user", None, None)).await;

    // With a secret configured, HS256 verifies against the secret only, never the public key.
    let public_pem = std::fs::read(fixture("ec-public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("attacker"),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert!(refusal_for(&app, &confused).await.starts_with("token_bad_signature: "));
    app.stop().await;
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = spawn_app_with(&[("JWT_ISSUER", "https://auth.example"), ("JWT_AUDIENCE", "switchyard")]).await;
    let mut good = claims("u");
    good.iss = Some("https://auth.example".into());
    good.aud = Some("switchyard".into());
    app.connect(&sign(&good)).await;

    let mut wrong_iss = good.clone();
    wrong_iss.iss = Some("https://evil.example".into());
    assert!(refusal_for(&app, &sign(&wrong_iss)).await.starts_with("token_invalid_claims: "));
    let mut no_aud = good.clone();
    no_aud.aud = None;
    assert!(refusal_for(&app, &sign(&no_aud)).await.starts_with("token_invalid_claims: "));
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_client_event_is_answered_with_a_clear_error() {
    let app = spawn_app().await;
    let mut c = app.connect(&user_token("u", None, None)).await;
    // Without an ack callback nothing is answered, and nothing breaks.
    c.emit("no-such-event", json!({})).await;
    let ack = c.emit_with_ack("no-such-event", json!({})).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "unknown_event");
    assert!(ack["error"]["message"].as_str().unwrap().contains("no-such-event"));
    // Still connected and served.
    app.publish(json!({"event": "x", "to": {"user": "u"}})).await;
    assert_eq!(c.next_event().await.0, "x");
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_a_transport_close_the_client_reconnects_on() {
    let app = spawn_app().await;
    let mut c = app.connect(&user_token("u", None, None)).await;
    let stopping = tokio::spawn(app.stop());
    // The connection ends without a Socket.IO disconnect packet (which would tell the
    // client not to reconnect).
    let reason = c.closed().await;
    assert_ne!(reason.as_deref(), Some("41"));
    stopping.await.unwrap();
}

/// A token signed with the test secret carrying exactly `claims` (claims `Claims` cannot hold).
fn signed_json(claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

#[tokio::test]
async fn a_token_valid_only_from_a_later_date_opens_nothing_yet() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let year = 365 * 24 * 3600;
    let next_year = signed_json(&json!({"sub": "early", "nbf": now + year, "exp": now + 2 * year}));

    let message = refusal_for(&app, &next_year).await;
    assert!(message.starts_with("token_not_yet_valid: "), "got `{message}`");
    let response = app.http.get(app.url("/api/history?room=user:early")).bearer_auth(&next_year).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_not_yet_valid");

    // A token whose `nbf` has passed is as good as one without.
    let mut c = app.connect(&signed_json(&json!({"sub": "on-time", "nbf": now - 60, "exp": now + 3600}))).await;
    assert_in_rooms(&app, &mut c, &["user:on-time"]).await;
    app.stop().await;
}

#[tokio::test]
async fn a_token_that_expired_before_1970_is_refused_as_expired() {
    let app = spawn_app().await;
    let message = refusal_for(&app, &signed_json(&json!({"sub": "u", "exp": -1}))).await;
    assert!(message.starts_with("token_expired: "), "got `{message}`");
    app.stop().await;
}

#[tokio::test]
async fn an_empty_handshake_token_does_not_hide_the_authorization_header() {
    let app = spawn_app().await;
    for empty in ["", "   "] {
        let options = ConnectOptions {
            auth: Some(json!({ "token": empty })),
            headers: vec![("authorization".into(), format!("Bearer {}", user_token("h", None, None)))],
            ..Default::default()
        };
        let mut c = app.connect_with(options).await.expect("the header's token is read");
        assert_in_rooms(&app, &mut c, &["user:h"]).await;
    }
    app.stop().await;
}
