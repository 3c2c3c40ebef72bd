//! Who is calling: user tokens (JWT) for clients. (Backends' API keys and the HTTP extractors
//! are the HTTP API's: [`crate::http`].)
//!
//! - [`token`]: where a token is found (handshake `auth.token`, `Authorization: Bearer`,
//!   `?token=`), how it is verified, and the [`Identity`] it proves.
//! - [`error`]: every refusal, with a stable code clients can switch on.
//!
//! [`authenticate`] is the one check every user connection passes, whatever the transport.

pub mod error;
pub mod token;

pub use error::AuthError;
pub use token::{Claims, Identity, TokenVerifier};

use sea_orm::DatabaseConnection;

use crate::directory;

/// Verifies a client's token and, when `directory` is given (`AUTH_REQUIRE_USER`), that the
/// directory knows the user with a verified email.
pub async fn authenticate(
    tokens: &TokenVerifier,
    directory: Option<&DatabaseConnection>,
    token: Option<String>,
) -> Result<Identity, AuthError> {
    let token = token.ok_or(AuthError::Missing)?;
    let identity = tokens.verify(&token)?;
    if let Some(db) = directory {
        let user = directory::find_user(db, &identity.user_id)
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
