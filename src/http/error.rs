//! The HTTP API's one error type. Clients get `{"error": {"code", "message"[, "field"]}}` with a
//! status that says whose fault it is; 5xx details go to the log, not to the client.

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(json!({ "error": body }))).into_response()
    }
}
