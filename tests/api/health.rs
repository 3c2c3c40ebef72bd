//! Health endpoints and CORS.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let alive = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["database"], "up");
    app.stop().await;
}

#[tokio::test]
async fn listed_origins_get_credentialed_cors_on_the_api_and_the_socket_endpoint() {
    let app =
        spawn_app_with(&[("CORS_ORIGINS", "http://app.example:3000"), ("FRONTEND_URL", "https://front.example/")])
            .await;
    for origin in ["http://app.example:3000", "https://front.example"] {
        for path in ["/api/events", "/socket.io/?EIO=4&transport=polling"] {
            let preflight = app
                .http
                .request(reqwest::Method::OPTIONS, app.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type,authorization")
                .send()
                .await
                .unwrap();
            let headers = preflight.headers();
            assert_eq!(headers["access-control-allow-origin"], origin, "{path}");
            assert_eq!(headers["access-control-allow-credentials"], "true", "{path}");
        }
    }
    let polling = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .header("origin", "http://app.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(polling.headers()["access-control-allow-origin"], "http://app.example:3000");

    let stranger = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/events"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(stranger.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn without_listed_origins_any_origin_is_allowed_without_credentials() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/healthz")).header("origin", "http://anywhere.example").send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(response.headers().get("access-control-allow-credentials").is_none());
    app.stop().await;
}
