//! Admission of backends to the server API: a key from `API_KEYS`, sent as
//! `Authorization: Bearer <key>` or `X-Api-Key: <key>`. A user's JWT is refused here with its
//! own message, so that a misconfigured backend learns what it did wrong.

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::ApiError;
use crate::auth::token::bearer;
use crate::state::AppState;

/// Proof that the request carried a configured API key.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or_else(|| bearer(&parts.headers));
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::Unauthorized {
                code: "api_key_missing",
                message: "send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`".into(),
            });
        };
        let known = state.settings.api_keys.iter().any(|key| key.matches(presented));
        if known {
            return Ok(ApiKey);
        }
        if state.tokens.verify(presented).is_ok() {
            return Err(ApiError::Forbidden {
                code: "user_token_refused",
                message: "a user token cannot call the server API; use an API key".into(),
            });
        }
        Err(ApiError::Unauthorized { code: "api_key_invalid", message: "the API key is not valid".into() })
    }
}
