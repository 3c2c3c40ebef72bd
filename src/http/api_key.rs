//! Admission of backends to the server API: a key from `API_KEYS`, sent as
//! `Authorization: Bearer <key>` or `X-Api-Key: <key>`. A user's JWT is refused here with its
//! own message, so that a misconfigured backend learns what it did wrong.

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::ApiError;
use crate::state::AppState;

/// Proof that the request carried a configured API key.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let presented = header("x-api-key").map(str::trim).or_else(|| {
            header("authorization").and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
                    .map(str::trim)
            })
        });
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::Unauthorized {
                code: "api_key_missing",
                message: "send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`"
                    .into(),
            });
        };
        let known = state
            .settings
            .api_keys
            .iter()
            .any(|key| constant_time_eq(key.expose().as_bytes(), presented.as_bytes()));
        if known {
            return Ok(ApiKey);
        }
        if state.tokens.verify(presented).is_ok() {
            return Err(ApiError::Forbidden {
                code: "user_token_refused",
                message: "a user token cannot call the server API; use an API key".into(),
            });
        }
        Err(ApiError::Unauthorized {
            code: "api_key_invalid",
            message: "the API key is not valid".into(),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
