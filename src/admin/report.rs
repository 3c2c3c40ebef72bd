//! What the admin UI is shown, in the shapes `@socket.io/admin-ui` reads: a socket
//! (`SerializedSocket`), this instance's `server_stats`, and the tally of connections opened and
//! closed between two reports (`aggregatedEvents`). Secrets a handshake carries (the
//! `Authorization` and `Cookie` headers, a `token` in the query) are shown as `[redacted]`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ConnectInfo;
use serde_json::{Map, Value, json};
use socketioxide::TransportType;
use socketioxide::extract::SocketRef;

use crate::auth::Identity;

const REDACTED: &str = "[redacted]";

/// When a socket connected, in milliseconds since the epoch (kept in its extensions while the
/// admin UI is on).
#[derive(Debug, Clone, Copy)]
pub struct ConnectedAt(pub i64);

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The time as the admin UI reads event timestamps (an ISO string, like `JSON.stringify(date)`).
pub fn timestamp() -> Value {
    Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// One socket, as the admin UI lists it.
pub fn socket(socket: &SocketRef, namespace: &str) -> Value {
    let parts = socket.req_parts();
    let address = forwarded_for(&parts.headers)
        .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()))
        .unwrap_or_default();
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = match name.as_str() {
                "authorization" | "cookie" => REDACTED.to_owned(),
                _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
            };
            (name.as_str().to_owned(), Value::String(shown))
        })
        .collect();
    let query: Map<String, Value> = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| {
            let shown = if k == "token" { REDACTED.into() } else { v.into_owned() };
            (k.into_owned(), Value::String(shown))
        })
        .collect();
    let issued = socket.extensions.get::<ConnectedAt>().map_or_else(now_ms, |c| c.0);
    let data = match socket.extensions.get::<Identity>() {
        Some(identity) => json!({"userId": identity.user_id}),
        None => json!({}),
    };
    let id = socket.id.to_string();
    json!({
        "id": id,
        "clientId": id,
        "transport": transport(socket),
        "nsp": namespace,
        "data": data,
        "handshake": {
            "address": address,
            "headers": headers,
            "query": query,
            "issued": issued,
            "time": chrono::DateTime::from_timestamp_millis(issued).map(|t| t.to_rfc2822()).unwrap_or_default(),
            "url": redacted_url(&parts.uri),
            "secure": parts.uri.scheme_str() == Some("https"),
            "xdomain": parts.headers.contains_key("origin"),
        },
        "rooms": socket.rooms().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    })
}

/// The handshake's path and query, a `token` in it redacted (2.x clients send theirs there).
fn redacted_url(uri: &http::Uri) -> String {
    let Some(query) = uri.query() else { return uri.path().to_owned() };
    let mut shown = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        shown.append_pair(&k, if k == "token" { REDACTED } else { &v });
    }
    format!("{}?{}", uri.path(), shown.finish())
}

pub fn transport(socket: &SocketRef) -> &'static str {
    match socket.transport_type() {
        TransportType::Polling => "polling",
        TransportType::Websocket => "websocket",
    }
}

/// The first address of `X-Forwarded-For` (or Cloudflare's header), as Node's admin UI shows.
fn forwarded_for(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("cf-connecting-ip").or_else(|| headers.get("x-forwarded-for"))?;
    value.to_str().ok()?.split(',').next().map(|a| a.trim().to_owned())
}

/// Connections opened and closed since the last report.
#[derive(Debug, Default)]
pub struct Tally {
    opened: AtomicU64,
    closed: AtomicU64,
}

impl Tally {
    pub fn opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts since the last call, as `aggregatedEvents` entries (stamped with this second).
    pub fn take(&self) -> Vec<Value> {
        let second = now_ms() / 1000 * 1000;
        [("rawConnection", &self.opened), ("rawDisconnection", &self.closed)]
            .into_iter()
            .filter_map(|(kind, counter)| match counter.swap(0, Ordering::Relaxed) {
                0 => None,
                count => Some(json!({"timestamp": second, "type": kind, "count": count})),
            })
            .collect()
    }
}

/// This machine's name, as `server_stats` reports it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_in_the_handshake_url_is_redacted() {
        let uri: http::Uri = "/socket.io/?EIO=3&transport=polling&token=eyJ.secret.sig&t=x".parse().unwrap();
        assert_eq!(super::redacted_url(&uri), "/socket.io/?EIO=3&transport=polling&token=%5Bredacted%5D&t=x");
        assert_eq!(super::redacted_url(&"/socket.io/".parse().unwrap()), "/socket.io/");
    }
}
