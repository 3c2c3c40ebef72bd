//! JWT verification and the identity a token proves.
//!
//! Algorithms are pinned by configuration, never by the token: HS256 only with `JWT_SECRET`,
//! RS256/ES256 only with the public key of `JWT_PUBLIC_KEY_FILE`. A token whose header names
//! another algorithm (`none` included) is refused before any key is touched, which is what
//! closes the algorithm-confusion hole (an HS256 token "signed" with the public key).

use std::collections::HashSet;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::config::{JwtSettings, PublicKeyKind};
use crate::rooms::{self, Room};

/// The claims Switchyard reads. Unknown claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(
        default,
        rename = "organizationId",
        alias = "orgId",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::id::deserialize_optional"
    )]
    pub organization_id: Option<String>,
    #[serde(
        default,
        rename = "tenantId",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::id::deserialize_optional"
    )]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Claims {
    /// Claims for `sub` issued now and valid for `ttl`, with the issuer and audience this server
    /// checks (what `switchyard token` and the demo page sign); no other claim.
    pub fn issued_now(sub: &str, ttl: std::time::Duration, settings: &JwtSettings) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: sub.to_owned(),
            exp: now + ttl.as_secs() as i64,
            iat: Some(now),
            organization_id: None,
            tenant_id: None,
            role: None,
            email_verified: None,
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
        }
    }
}

/// Who a verified token says the caller is. Kept in the socket's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub organization_id: Option<String>,
    pub tenant_id: Option<String>,
    pub role: Option<String>,
    pub email_verified: Option<bool>,
    /// Unix seconds at which the token stops being valid.
    pub expires_at: i64,
}

impl Identity {
    /// The rooms every connection of this user is in (see [`rooms::home_rooms`]).
    pub fn home_rooms(&self) -> Vec<Room> {
        rooms::home_rooms(&self.user_id, self.organization_id.as_deref(), self.tenant_id.as_deref())
    }

    /// The rooms this user's presence is announced to.
    pub fn status_rooms(&self) -> Vec<Room> {
        rooms::status_rooms(self.organization_id.as_deref(), self.tenant_id.as_deref())
    }
}

impl From<Claims> for Identity {
    fn from(c: Claims) -> Self {
        Identity {
            user_id: c.sub,
            organization_id: c.organization_id,
            tenant_id: c.tenant_id,
            role: c.role,
            email_verified: c.email_verified,
            expires_at: c.exp,
        }
    }
}

/// Verifies tokens against the configured keys; cheap to share behind an `Arc`.
pub struct TokenVerifier {
    hmac: Option<(DecodingKey, EncodingKey)>,
    public: Option<(DecodingKey, Vec<Algorithm>)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenVerifier {
    pub fn new(settings: &JwtSettings) -> Self {
        let hmac = settings.secret.as_ref().map(|s| {
            (DecodingKey::from_secret(s.expose().as_bytes()), EncodingKey::from_secret(s.expose().as_bytes()))
        });
        let public = settings.public_key.as_ref().map(|key| match key.kind {
            // The PEM was parsed when the settings were loaded.
            PublicKeyKind::Rsa => (
                DecodingKey::from_rsa_pem(&key.pem).expect("validated RSA key"),
                vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
            ),
            PublicKeyKind::Ec => (
                DecodingKey::from_ec_pem(&key.pem).expect("validated EC key"),
                vec![Algorithm::ES256, Algorithm::ES384],
            ),
        });
        TokenVerifier { hmac, public, issuer: settings.issuer.clone(), audience: settings.audience.clone() }
    }

    /// Checks signature, algorithm, issuer/audience when configured, then the validity window
    /// (`exp`, and `nbf` when present; see [`check_validity_window`]).
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let alg = header_algorithm(token)?;
        let (key, algorithm) = match (alg.as_str(), &self.hmac, &self.public) {
            ("HS256", Some((key, _)), _) => (key, Algorithm::HS256),
            (name, _, Some((key, allowed))) => match allowed.iter().find(|a| format!("{a:?}") == name) {
                Some(a) => (key, *a),
                None => return Err(AuthError::AlgorithmRefused(alg)),
            },
            _ => return Err(AuthError::AlgorithmRefused(alg)),
        };

        let mut validation = Validation::new(algorithm);
        // The validity window is checked below, on the signed claims: jsonwebtoken reads `exp`
        // and `nbf` as unsigned numbers (a negative `exp` would read as missing) and checks
        // `nbf` only when asked.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::from(["sub".to_owned()]);
        validation.validate_aud = self.audience.is_some();
        if let Some(aud) = &self.audience {
            validation.set_audience(&[aud]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".to_owned());
        }

        let data = jsonwebtoken::decode::<serde_json::Value>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidIssuer => AuthError::InvalidClaims("issuer not accepted".into()),
            ErrorKind::InvalidAudience => AuthError::InvalidClaims("audience not accepted".into()),
            ErrorKind::MissingRequiredClaim(c) => AuthError::InvalidClaims(format!("required claim `{c}` is missing")),
            ErrorKind::InvalidClaimFormat(c) => AuthError::InvalidClaims(format!("claim `{c}` has the wrong type")),
            ErrorKind::Json(_) => AuthError::InvalidClaims("the claims are not a JSON object".into()),
            ErrorKind::InvalidAlgorithm => AuthError::AlgorithmRefused(alg.clone()),
            _ => AuthError::Malformed("undecodable"),
        })?;
        check_validity_window(&data.claims, chrono::Utc::now().timestamp())?;
        let claims = Claims::deserialize(&data.claims).map_err(|_| {
            AuthError::InvalidClaims("claims are not valid (sub must be a string, exp a number)".into())
        })?;
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidClaims("`sub` is empty".into()));
        }
        Ok(claims.into())
    }

    /// Signs development tokens with the HS256 secret (`switchyard token`, tests).
    /// `None` when only a public key is configured.
    pub fn sign(&self, claims: &Claims) -> Option<String> {
        let (_, key) = self.hmac.as_ref()?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key).ok()
    }
}

/// How far a token's clock may be from ours, in seconds, either way.
const CLOCK_LEEWAY: i64 = 5;

/// The token's validity window, checked on its signed claims at `now` (Unix seconds), with
/// [`CLOCK_LEEWAY`]: `exp` is required and must not have passed (any number, negative ones
/// included, so a long-gone `exp` is refused as expired rather than as missing), and `nbf`, when
/// present, must have been reached (a token minted for later does not open anything now).
fn check_validity_window(claims: &serde_json::Value, now: i64) -> Result<(), AuthError> {
    let time = |name: &str| -> Result<Option<f64>, AuthError> {
        match claims.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| AuthError::InvalidClaims(format!("claim `{name}` has the wrong type"))),
        }
    };
    let Some(expires) = time("exp")? else {
        return Err(AuthError::InvalidClaims("required claim `exp` is missing".into()));
    };
    if expires < (now - CLOCK_LEEWAY) as f64 {
        return Err(AuthError::Expired);
    }
    if time("nbf")?.is_some_and(|not_before| not_before > (now + CLOCK_LEEWAY) as f64) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// Reads `alg` from the header without trusting anything else in the token.
fn header_algorithm(token: &str) -> Result<String, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
    }
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("header is not JSON"))?;
    // The refusal quotes the name back (and logs count it): a few characters are all any real
    // algorithm name needs, whatever length the token's author chose.
    const LONGEST_QUOTED: usize = 16;
    Ok(match header.alg.char_indices().nth(LONGEST_QUOTED) {
        Some((cut, _)) => format!("{}…", &header.alg[..cut]),
        None => header.alg,
    })
}

/// Finds the token a client sent, in the documented order: handshake `auth.token`, then the
/// `Authorization: Bearer` header, then the `token` query parameter. An empty or blank source
/// counts as absent, so the next one is read: a client library that always sends
/// `auth: {token: ""}` does not hide the header its page set.
pub fn find_token<'a>(
    auth: Option<&'a serde_json::Value>,
    headers: &'a http::HeaderMap,
    query: Option<&'a str>,
) -> Option<String> {
    let given = |token: &str| Some(token.trim()).filter(|t| !t.is_empty()).map(str::to_owned);
    let from_auth = || auth.and_then(|a| a.get("token")).and_then(|t| t.as_str()).map(strip_bearer).and_then(given);
    let from_header = || bearer(headers).and_then(given);
    let from_query = || query.and_then(|q| query_param(q, "token")).as_deref().and_then(given);
    from_auth().or_else(from_header).or_else(from_query)
}

/// The credential of an `Authorization: Bearer <credential>` header (a token, an API key, the
/// metrics token).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let header = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

fn strip_bearer(token: &str) -> &str {
    token.strip_prefix("Bearer ").unwrap_or(token).trim()
}

/// The decoded value of one query parameter.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
