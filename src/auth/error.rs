//! Why a client was refused. Each variant has a stable machine-readable code; the text
//! shown to the client is `"{code}: {sentence}"`, and never says anything about the keys.

/// A refused authentication. `Display` is what a Socket.IO client sees as
/// `connect_error.message`, and what the HTTP API puts in its error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token_missing: no token in handshake auth.token, Authorization header or token query parameter")]
    Missing,
    #[error("token_malformed: the token is not a well-formed JWT ({0})")]
    Malformed(&'static str),
    #[error("token_algorithm_refused: tokens signed with {0} are not accepted")]
    AlgorithmRefused(String),
    #[error("token_bad_signature: the token signature does not verify")]
    BadSignature,
    #[error("token_expired: the token has expired")]
    Expired,
    #[error("token_not_yet_valid: the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token_invalid_claims: {0}")]
    InvalidClaims(String),
    #[error("user_unknown: the token's user is not known to this server")]
    UnknownUser,
    #[error("email_unverified: the user's email address is not verified")]
    EmailUnverified,
    #[error("auth_unavailable: the user directory could not be read, try again")]
    Unavailable,
    #[error("too_many_connections: at most {0} connections per user (MAX_CONNECTIONS_PER_USER)")]
    TooManyConnections(usize),
    /// A refresh with a token of another user than the connection's.
    #[error("token_user_mismatch: the new token is another user's")]
    UserMismatch,
}

impl AuthError {
    /// Every refusal's code (for series that exist before the first refusal).
    pub fn codes() -> [&'static str; 12] {
        [
            AuthError::Missing,
            AuthError::Malformed(""),
            AuthError::AlgorithmRefused(String::new()),
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::InvalidClaims(String::new()),
            AuthError::UnknownUser,
            AuthError::EmailUnverified,
            AuthError::Unavailable,
            AuthError::TooManyConnections(0),
            AuthError::UserMismatch,
        ]
        .map(|e| e.code())
    }

    /// The stable code, the part before the colon in the message.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed(_) => "token_malformed",
            AuthError::AlgorithmRefused(_) => "token_algorithm_refused",
            AuthError::BadSignature => "token_bad_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::InvalidClaims(_) => "token_invalid_claims",
            AuthError::UnknownUser => "user_unknown",
            AuthError::EmailUnverified => "email_unverified",
            AuthError::Unavailable => "auth_unavailable",
            AuthError::TooManyConnections(_) => "too_many_connections",
            AuthError::UserMismatch => "token_user_mismatch",
        }
    }
}
