//! The command line: `switchyard [serve]`, `switchyard migrate`, `switchyard token`,
//! `switchyard catalogue`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "Real-time server: Socket.IO and plain WebSocket, one publish path")]
pub struct Cli {
    /// A TOML settings file (keys as the environment names); `switchyard.toml` is read when present.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a development JWT signed with the configured HS256 secret.
    Token(TokenArgs),
    /// Print the event catalogue for clients: TypeScript interfaces for socket.io-client, or
    /// JSON Schema.
    Catalogue(CatalogueArgs),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct CatalogueArgs {
    /// `ServerToClientEvents` and `ClientToServerEvents`, as a `.d.ts` file.
    #[arg(long)]
    pub typescript: bool,
    /// The catalogue as JSON Schema.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Organization id (`organizationId`).
    #[arg(long)]
    pub org: Option<String>,
    /// Tenant id (`tenantId`).
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub role: Option<String>,
    /// Lifetime, e.g. `15m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}
