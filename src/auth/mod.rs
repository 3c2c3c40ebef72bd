//! Who is calling. User tokens (JWT) for clients, API keys for backends.
//!
//! - [`token`]: where a token is found (handshake `auth.token`, `Authorization: Bearer`,
//!   `?token=`), how it is verified, and the [`Identity`] it proves.
//! - [`error`]: every refusal, with a stable code clients can switch on.
//! - [`api_key`]: the extractor that admits backends to the HTTP API.

pub mod api_key;
pub mod error;
pub mod token;

pub use api_key::ApiKey;
pub use error::AuthError;
pub use token::{Claims, Identity, TokenVerifier};
