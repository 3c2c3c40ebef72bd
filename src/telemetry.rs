//! Logging: `RUST_LOG` filters, `LOG_FORMAT=json` writes one JSON object per line.
//! Tokens and secrets are never recorded: request spans carry the path without its query.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, Settings};

const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm_migration=warn";

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), which
/// lets tests start several servers in one process.
pub fn init(settings: &Settings) {
    let filter = settings
        .rust_log
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.log_format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(false)).try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
}
