//! Stopping drains: the instance closes its port, answers not ready, and closes its connections
//! one by one over `SHUTDOWN_DRAIN` while serving the requests of connections still open.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{spawn_app_with, user_token};

#[tokio::test]
async fn a_draining_instance_refuses_new_connections_says_not_ready_and_closes_its_own() {
    let mut app = spawn_app_with(&[("SHUTDOWN_DRAIN", "3s")]).await;
    let url = format!("ws://{}/ws?token={}", app.addr, user_token("fan", None, None));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // A keep-alive connection to ask readiness on once the port is closed.
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);

    app.signal_stop();
    loop {
        let status = app.http.get(app.url("/readyz")).send().await.unwrap().status();
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The port is closed: a new client goes elsewhere.
    assert!(tokio::net::TcpStream::connect(app.addr).await.is_err(), "still accepting");
    // The open connection is told the server restarts, so that it reconnects.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("closed within the drain") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Restart));
    app.stop().await;
}
