//! The operator's settings: who may scrape `/metrics` (`METRICS_TOKEN`), who may use the admin
//! UI (`ADMIN_USERNAME`, `ADMIN_PASSWORD`) and how often one address may try
//! (`ADMIN_LOGIN_RATE`), and the certificate to serve HTTPS and WSS with
//! (`TLS_CERT_FILE`, `TLS_KEY_FILE`). Files are read and checked here, so a bad one stops the
//! start with the variable's name.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::values::positive;
use super::{ConfigError, Secret, invalid};

#[derive(Debug, Clone, Default)]
pub struct Operations {
    /// Required as `Authorization: Bearer` on `/metrics` when set.
    pub metrics_token: Option<Secret>,
    /// The admin UI's login; without it the `/admin` namespace refuses everyone.
    pub admin: Option<AdminLogin>,
    /// HTTPS and WSS on the listening port, when set.
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone)]
pub struct AdminLogin {
    pub username: String,
    pub password: AdminPassword,
    /// `ADMIN_LOGIN_RATE`: login attempts per minute from one client address (as many at
    /// once); more are refused without checking the password.
    pub attempts_per_minute: u32,
}

/// Login attempts per minute per address unless `ADMIN_LOGIN_RATE` says otherwise: more than an
/// operator retyping a password or reloading the UI makes, few enough that guessing is slow.
const ADMIN_LOGIN_RATE: u32 = 10;

#[derive(Clone)]
pub enum AdminPassword {
    Plain(Secret),
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`), as `@socket.io/admin-ui`'s Node server takes.
    Bcrypt(String),
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPassword(***)")
    }
}

impl AdminPassword {
    pub fn matches(&self, given: &str) -> bool {
        match self {
            AdminPassword::Plain(secret) => secret.matches(given),
            AdminPassword::Bcrypt(hash) => bcrypt::verify(given, hash).unwrap_or(false),
        }
    }
}

/// A certificate chain and its private key, parsed.
#[derive(Debug)]
pub struct Tls {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Tls {
    fn clone(&self) -> Self {
        Tls { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

pub(super) struct RawOperations<'a> {
    pub metrics_token: Option<&'a str>,
    pub admin_username: Option<&'a str>,
    pub admin_password: Option<&'a str>,
    pub admin_login_rate: Option<&'a str>,
    pub tls_cert_file: Option<&'a str>,
    pub tls_key_file: Option<&'a str>,
}

pub(super) fn operations(raw: RawOperations<'_>) -> Result<Operations, ConfigError> {
    let attempts_per_minute = positive("ADMIN_LOGIN_RATE", raw.admin_login_rate, ADMIN_LOGIN_RATE)?;
    let admin = match (raw.admin_username, raw.admin_password) {
        (None, None) => None,
        (Some(_), None) => return Err(invalid("ADMIN_PASSWORD", "is required when ADMIN_USERNAME is set")),
        (None, Some(_)) => return Err(invalid("ADMIN_USERNAME", "is required when ADMIN_PASSWORD is set")),
        (Some(username), Some(password)) => {
            Some(AdminLogin { username: username.to_owned(), password: admin_password(password)?, attempts_per_minute })
        }
    };
    let tls = match (raw.tls_cert_file, raw.tls_key_file) {
        (None, None) => None,
        (Some(_), None) => return Err(invalid("TLS_KEY_FILE", "is required when TLS_CERT_FILE is set")),
        (None, Some(_)) => return Err(invalid("TLS_CERT_FILE", "is required when TLS_KEY_FILE is set")),
        (Some(cert), Some(key)) => Some(read_tls(cert, key)?),
    };
    Ok(Operations { metrics_token: raw.metrics_token.map(Secret::new), admin, tls })
}

fn admin_password(value: &str) -> Result<AdminPassword, ConfigError> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| value.starts_with(p)) {
        // A hash that cannot verify anything would lock the operator out without a word.
        bcrypt::verify("", value)
            .map_err(|e| invalid("ADMIN_PASSWORD", format!("looks like a bcrypt hash but is not one: {e}")))?;
        return Ok(AdminPassword::Bcrypt(value.to_owned()));
    }
    Ok(AdminPassword::Plain(Secret::new(value)))
}

fn read_tls(cert_path: &str, key_path: &str) -> Result<Tls, ConfigError> {
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| invalid("TLS_CERT_FILE", format!("cannot read `{cert_path}`: {e}")))?;
    let key_pem =
        std::fs::read(key_path).map_err(|e| invalid("TLS_KEY_FILE", format!("cannot read `{key_path}`: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("TLS_CERT_FILE", format!("`{cert_path}` is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid("TLS_CERT_FILE", format!("`{cert_path}` holds no PEM certificate")));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid("TLS_KEY_FILE", format!("`{key_path}` holds no PEM private key: {e}")))?;
    Ok(Tls { chain, key })
}
