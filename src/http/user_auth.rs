//! Users on the HTTP API (the polling fallback): the same token sources as the sockets, less
//! the handshake (`Authorization: Bearer`, then `?token=`).

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::ApiError;
use crate::auth::Identity;
use crate::auth::token::find_token;
use crate::state::AppState;

/// The verified identity of the calling user.
pub struct UserAuth(pub Identity);

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = find_token(None, &parts.headers, parts.uri.query());
        state
            .authenticate(token)
            .await
            .map(UserAuth)
            .map_err(|e| ApiError::Unauthorized { code: e.code(), message: e.to_string() })
    }
}
