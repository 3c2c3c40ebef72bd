//! Reading one value: numbers, booleans, durations, lists, origins. Each error names the
//! variable at fault.

use std::time::Duration;

use super::{ConfigError, invalid};

pub(super) fn parse_duration(var: &'static str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default).trim();
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(var, format!("`{text}` is not a duration like 30s, 5m, 7d")))
}

/// A duration where zero means "none" (`0`, `0s`).
pub(super) fn parse_duration_or_zero(
    var: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or(default).trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|_| invalid(var, format!("`{text}` is not a duration like 5s or 0")))
}

pub(super) fn parse_port(var: &'static str, value: &str) -> Result<u16, ConfigError> {
    value.trim().parse().map_err(|_| invalid(var, format!("`{value}` is not a port number (0-65535)")))
}

pub(super) fn parse_bool(var: &'static str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false") | Some("0") | Some("no") | Some("off") => Ok(false),
        Some("true") | Some("1") | Some("yes") | Some("on") => Ok(true),
        Some(other) => Err(invalid(var, format!("`{other}` is not true or false"))),
    }
}

pub(super) fn split_list(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub(super) fn validate_origin(var: &'static str, origin: &str) -> Result<(), ConfigError> {
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(()),
        _ => Err(invalid(var, format!("`{origin}` is not an origin like https://app.example.com"))),
    }
}

pub(super) fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A positive number, or `default` when unset.
pub(super) fn positive<T: std::str::FromStr + PartialOrd + Default>(
    var: &'static str,
    value: Option<&str>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > T::default())
            .ok_or_else(|| invalid(var, format!("`{v}` is not a positive number"))),
        None => Ok(default),
    }
}
