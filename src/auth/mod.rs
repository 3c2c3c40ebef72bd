//! Who is calling. User tokens (JWT) for clients, API keys for backends.
//!
//! - [`token`]: where a token is found (handshake `auth.token`, `Authorization: Bearer`,
//!   `?token=`), how it is verified, and the [`Identity`] it proves.
//! - [`error`]: every refusal, with a stable code clients can switch on.
//! - [`api_key`]: the extractor that admits backends to the HTTP API.
//! - [`user`]: the extractor that admits users to the HTTP API (polling).
//!
//! [`authenticate`] is the one check every user connection passes, whatever the transport.

pub mod api_key;
pub mod error;
pub mod token;
pub mod user;

pub use api_key::ApiKey;
pub use error::AuthError;
pub use token::{Claims, Identity, TokenVerifier};
pub use user::UserAuth;

use crate::directory;
use crate::state::AppState;

/// Verifies a client's token and, with `AUTH_REQUIRE_USER`, that the directory knows the user
/// with a verified email.
pub async fn authenticate(state: &AppState, token: Option<String>) -> Result<Identity, AuthError> {
    let token = token.ok_or(AuthError::Missing)?;
    let identity = state.tokens.verify(&token)?;
    if state.settings.auth_require_user {
        let user = directory::find_user(&state.db, &identity.user_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "directory lookup failed during authentication");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::UnknownUser)?;
        if !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
    }
    Ok(identity)
}
