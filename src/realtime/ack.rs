//! The ack envelope: `{ok: true, ...fields}` or `{ok: false, error: {code, message}}`.

use serde_json::{Map, Value, json};
use socketioxide::extract::AckSender;
use socketioxide::{SendError, SocketError};

/// A refusal of a client event, as the client sees it in its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    pub code: &'static str,
    pub message: String,
}

impl AckError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        AckError { code, message: message.into() }
    }
}

/// Answers the client's ack callback, if it gave one; a client without one is answered
/// nothing, as Socket.IO expects. False when the answer could not be queued because the
/// socket's send queue is full (a closed socket has nobody to tell: true).
#[must_use]
pub fn reply(ack: AckSender, result: Result<Map<String, Value>, AckError>) -> bool {
    let body = match result {
        Ok(mut fields) => {
            fields.insert("ok".into(), Value::Bool(true));
            Value::Object(fields)
        }
        Err(e) => json!({"ok": false, "error": {"code": e.code, "message": e.message}}),
    };
    // The socket may be gone already: nothing to tell then.
    !matches!(ack.send(&body), Err(SendError::Socket(SocketError::InternalChannelFull)))
}
