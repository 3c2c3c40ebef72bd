//! What a plain WebSocket client is told when a connection or a message is refused: an error
//! frame with a stable code and a sentence.

use serde_json::json;

use crate::auth::AuthError;
use crate::subscriptions::SubscriptionError;

/// A refused connection or message: `{type: "error", code, message}`.
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into() }
    }

    pub fn frame(&self) -> String {
        json!({"type": "error", "code": self.code, "message": self.message}).to_string()
    }
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Refusal::new(e.code(), e.to_string())
    }
}

impl From<SubscriptionError> for Refusal {
    fn from(e: SubscriptionError) -> Self {
        Refusal::new(e.code(), e.to_string())
    }
}
