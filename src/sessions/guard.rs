//! The middleware in front of Socket.IO: a request that names a session (`sid=`) is served only
//! when it comes from the client address that opened it; a long-polling handshake's answer
//! tells which session it opened, and for whom.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::owners::Refusal;
use super::{SOCKET_IO_PATH, Sessions, digest};

/// The most of a handshake's answer read to find its session id (an open packet is ~120 bytes).
const HANDSHAKE_LIMIT: usize = 64 * 1024;

pub async fn guard(State(sessions): State<Arc<Sessions>>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(SOCKET_IO_PATH) {
        return next.run(request).await;
    }
    let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0) else {
        return next.run(request).await;
    };
    let client = sessions.proxies.client_address(peer.ip(), request.headers());
    let query = request.uri().query().unwrap_or_default();
    let websocket = query_value(query, "transport") == Some("websocket");
    match query_value(query, "sid") {
        Some(sid) => {
            let upgrade = websocket.then_some(peer);
            if let Err(refusal) = sessions.owners.admit(sid, client, upgrade) {
                let session = digest(sid);
                match refusal {
                    Refusal::OtherAddress => {
                        tracing::warn!(%session, %client, "refused: the session was opened from another address")
                    }
                    // Mostly a client still polling a session that ended (a restart, a timeout).
                    Refusal::Unknown => tracing::debug!(%session, %client, "refused: no such long-polling session"),
                    Refusal::Cut => tracing::debug!(%session, "refused: the session was cut"),
                }
                return unknown_session();
            }
            next.run(request).await
        }
        None if websocket || request.method() != http::Method::GET => next.run(request).await,
        None => {
            let response = next.run(request).await;
            if response.status() != StatusCode::OK {
                return response;
            }
            let (parts, body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, HANDSHAKE_LIMIT).await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            if let Some(sid) = opened_session(&bytes) {
                sessions.owners.open(sid, client);
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// What Engine.IO answers for a session it does not know (the same words, so that a client, or
/// an attacker, cannot tell a foreign session from a missing one).
fn unknown_session() -> Response {
    let body = r#"{"code":1,"message":"Session ID unknown"}"#;
    (StatusCode::BAD_REQUEST, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A query parameter's raw value, the first one (as engineioxide reads it: unescaped).
fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| pair.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// The session id an Engine.IO open packet announces (`0{"sid":"…",…}`, in any payload framing).
fn opened_session(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""sid":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok().filter(|sid| !sid.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_is_read_from_both_protocol_versions_open_packets() {
        let v4 = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000}"#;
        assert_eq!(opened_session(v4), Some("lv_VI97HAXpY6yYWAAAC"));
        let v3 = br#"96:0{"sid":"AAAAAAAAAAAAAAHs","upgrades":["websocket"],"pingInterval":25000}2:40"#;
        assert_eq!(opened_session(v3), Some("AAAAAAAAAAAAAAHs"));
        assert_eq!(opened_session(b"4hello"), None);
    }

    #[test]
    fn query_values_are_read_as_the_engine_reads_them() {
        let query = "EIO=4&transport=polling&t=abc&sid=s1&sid=s2";
        assert_eq!(query_value(query, "sid"), Some("s1"));
        assert_eq!(query_value(query, "transport"), Some("polling"));
        assert_eq!(query_value("sidx=1", "sid"), None);
    }
}
