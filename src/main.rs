use std::process::ExitCode;

use clap::Parser;
use migration::MigratorTrait;
use switchyard::auth::{Claims, TokenVerifier};
use switchyard::catalogue::Catalogue;
use switchyard::cli::{CatalogueArgs, Cli, Command, TokenArgs};
use switchyard::config::Settings;
use switchyard::startup::{self, Application};
use switchyard::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("switchyard: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Token(args) => token(&settings, args),
        Command::Catalogue(args) => catalogue(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("switchyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(startup::shutdown_signal()).await?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = startup::connect_database(&settings.database_url).await?;
    migration::Migrator::up(&db, None).await?;
    tracing::info!("migrations applied");
    Ok(())
}

fn catalogue(args: CatalogueArgs) -> anyhow::Result<()> {
    let catalogue = Catalogue::builtin();
    if args.json {
        println!("{:#}", catalogue.json_schema());
    } else {
        print!("{}", catalogue.typescript());
    }
    Ok(())
}

fn token(settings: &Settings, args: TokenArgs) -> anyhow::Result<()> {
    let claims = Claims {
        organization_id: args.org,
        tenant_id: args.tenant,
        role: args.role,
        ..Claims::issued_now(&args.sub, args.ttl, &settings.jwt)
    };
    let token = TokenVerifier::new(&settings.jwt).sign(&claims).ok_or_else(|| {
        anyhow::anyhow!("JWT_SECRET: minting needs the HS256 secret (only a public key is configured)")
    })?;
    println!("{token}");
    Ok(())
}
