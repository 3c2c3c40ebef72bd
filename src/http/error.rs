//! The HTTP API's one error type. Clients get `{"error": {"code", "message"[, "field"]}}` with a
//! status that says whose fault it is; 5xx details go to the log, not to the client.
//!
//! Messages quote the input at fault between backticks (`` `yesterday` is neither ... ``). Every
//! answer passes [`bounded`] on its way out, which cuts each quotation to [`QUOTED_CHARS`] and
//! the whole message to [`MESSAGE_CHARS`]: a request never comes back many times its size, and
//! the messages that build a quotation need not each remember to.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body or parameters do not parse.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The request parses but a field's value is not acceptable.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The body is larger than `MAX_PAYLOAD`.
    #[error("the body is larger than this server accepts (MAX_PAYLOAD)")]
    PayloadTooLarge,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidField { field: field.into(), message: message.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::NotFound { code: "not_found", message: format!("{what} `{id}` does not exist") }
    }
}

impl From<crate::publish::FieldError> for ApiError {
    fn from(e: crate::publish::FieldError) -> Self {
        ApiError::invalid_field(e.field, e.message)
    }
}

impl From<crate::publish::PublishError> for ApiError {
    fn from(e: crate::publish::PublishError) -> Self {
        match e {
            crate::publish::PublishError::InvalidTarget(e) => ApiError::invalid_field("to", e.to_string()),
            crate::publish::PublishError::History(message) => {
                tracing::error!(%message, "publication delivered but not recorded");
                ApiError::Unavailable {
                    code: "history_unavailable",
                    message: "the publication was delivered but its history could not be recorded".into(),
                }
            }
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl ApiError {
    /// The status and the `error` object a response carries (also one batch item's answer).
    pub fn status_and_body(&self) -> (StatusCode, serde_json::Value) {
        let (status, mut body) = self.unbounded_status_and_body();
        for key in ["message", "field"] {
            if let Some(serde_json::Value::String(text)) = body.get_mut(key) {
                *text = bounded(text);
            }
        }
        (status, body)
    }

    fn unbounded_status_and_body(&self) -> (StatusCode, serde_json::Value) {
        match self {
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, json!({"code": code, "message": message}))
            }
            ApiError::InvalidField { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"code": "invalid_field", "field": field, "message": format!("{field}: {message}")}),
            ),
            ApiError::Unauthorized { code, message } => {
                (StatusCode::UNAUTHORIZED, json!({"code": code, "message": message}))
            }
            ApiError::Forbidden { code, message } => (StatusCode::FORBIDDEN, json!({"code": code, "message": message})),
            ApiError::NotFound { code, message } => (StatusCode::NOT_FOUND, json!({"code": code, "message": message})),
            ApiError::Unavailable { code, message } => {
                (StatusCode::SERVICE_UNAVAILABLE, json!({"code": code, "message": message}))
            }
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"code": "payload_too_large", "message": self.to_string()}))
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"code": "internal", "message": "internal error; see the server log"}),
                )
            }
        }
    }
}

/// How many characters of a client's input a message quotes: enough to recognise it.
pub const QUOTED_CHARS: usize = 64;
/// The longest message an answer carries, whatever it says.
pub const MESSAGE_CHARS: usize = 512;

/// `message` with each backtick quotation cut to [`QUOTED_CHARS`] and the whole to
/// [`MESSAGE_CHARS`], a cut marked with `…`.
pub fn bounded(message: &str) -> String {
    // Between the 1st and 2nd backtick, the 3rd and 4th, ...: quoted; an unclosed one quotes to
    // the end.
    let text =
        message.split('`').enumerate().map(|(i, part)| if i % 2 == 1 { cut(part, QUOTED_CHARS) } else { part.into() });
    cut(&text.collect::<Vec<_>>().join("`"), MESSAGE_CHARS)
}

/// The first `chars` characters of `text`, followed by `…` when there were more.
fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(json!({ "error": body }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_a_short_prefix_of_the_input_and_stay_short() {
        let long = "9".repeat(10_000);
        let message = bounded(&format!("`{long}` is neither an offset nor an RFC 3339 time"));
        assert_eq!(message, format!("`{}…` is neither an offset nor an RFC 3339 time", &long[..QUOTED_CHARS]));
        assert_eq!(bounded("`short` and `ünïcödé` stay"), "`short` and `ünïcödé` stay");
        assert_eq!(bounded(&format!("unclosed `{long}")), format!("unclosed `{}…", &long[..QUOTED_CHARS]));
        let unquoted = bounded(&format!("invalid type: string \"{long}\""));
        assert_eq!(unquoted.chars().count(), MESSAGE_CHARS + 1);
    }
}
