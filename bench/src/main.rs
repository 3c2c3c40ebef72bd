//! `switchyard-bench`: drives Switchyard and the Node Socket.IO reference with the same load, in
//! the same run, and reports each figure side by side with the ratio.
//!
//! - [`servers`]: starts each server pinned to core 0 (the generator pins itself to core 1),
//!   reads its address from its `listening` log line and its memory from `/proc`.
//! - [`client`]: a minimal Engine.IO v4 / Socket.IO v5 WebSocket client (answers pings, counts
//!   deliveries, measures publish→receive latency from a timestamp in the payload).
//! - [`scenarios`]: idle connections, fan-out to one room and to many, 1:1 notify, HTTP publish
//!   latency, two instances via Redis.
//! - [`plain`]: idle plain WebSocket connections (`/ws`) against a Node `ws` server.
//! - [`report`]: the markdown table and JSON.
//! - [`drops`]: the drop benchmark (clients cut off every second, recovery on).
//! - [`soak`]: connection churn for a fixed time; memory and descriptors before and after.
//! - [`filtered`]: fan-out to one room where half the sockets filter, against nobody filtering.
//! - [`against`]: `compare --against <older binary>`: old, new and Node alternated, medians and
//!   spreads.

mod against;
mod bus;
mod client;
mod drops;
mod filtered;
mod measure;
mod plain;
mod report;
mod scenarios;
mod servers;
mod soak;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchyard-bench", about = "Switchyard against the Node Socket.IO reference")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario against both servers; writes bench/results/latest.{md,json} and the
    /// latency curve latency.svg. With `--against <older binary>`: the chosen scenarios for
    /// the older build, this one and Node, alternated for `--rounds`; printed, not written.
    Compare(scenarios::Sizes),
    /// The soak: connection churn with publications flowing; RSS and descriptors at start, peak
    /// and end, deliveries lost. Writes bench/results/soak.md.
    Soak(soak::SoakSizes),
    /// The drop benchmark: clients cut off every second while a stream runs, each server's
    /// recovery on; writes bench/results/drops.{md,json,svg}.
    Drops(drops::DropSizes),
    /// The bus: Redis bytes out and each instance's bytes in per publication as the instance
    /// count grows, against the build given as `--before`; writes bench/results/bus.md.
    Bus(bus::BusSizes),
    /// Filters at fan-out: one room where half the sockets filter, against nobody filtering;
    /// writes bench/results/filters.md.
    Filters(filtered::FilterSizes),
    /// A few seconds at small sizes, to keep the generator honest (part of the test command).
    Smoke,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    servers::pin_self_to_core(1);
    let open_files = servers::raise_open_files();
    let smoke = matches!(cli.command, Command::Smoke);
    let mut sizes = match cli.command {
        Command::Compare(sizes) => sizes,
        Command::Smoke => scenarios::Sizes::smoke(),
        Command::Drops(sizes) => return run_drops(&sizes, false).await,
        Command::Soak(sizes) => return run_soak(&sizes, false).await,
        Command::Bus(sizes) => return run_bus(&sizes, false).await,
        Command::Filters(sizes) => return run_filters(&sizes, false).await,
    };
    // bench/results holds whole side-by-side runs only: a one-server or one-scenario run
    // (profiling, measuring a change) just prints.
    let both =
        !sizes.cross_only && [servers::Kind::Switchyard, servers::Kind::Node].iter().all(|k| sizes.servers.contains(k));
    // Each connection is a file descriptor in the server and one in the generator; keep 1,000
    // for everything else (database, Redis, HTTP publishers).
    let reachable = (open_files as usize).saturating_sub(1_000);
    if sizes.idle_max > reachable {
        eprintln!(
            "open files are limited to {open_files} per process here (a hard limit; raising it needs \
             CAP_SYS_RESOURCE): idle connections stop at {reachable} instead of {}",
            sizes.idle_max
        );
        sizes.idle_max = reachable;
        sizes.idle = sizes.idle.min(reachable);
    }
    if let Some(against) = sizes.against.clone() {
        println!("{}", against::run(&sizes, &against).await?);
        return Ok(());
    }
    let results = scenarios::run_all(&sizes).await?;
    let table = report::markdown(&results, &sizes) + &report::curve(&results);
    println!("{table}");
    if smoke {
        report::check_smoke(&results)?;
        run_drops(&drops::DropSizes::smoke(), true).await?;
        run_soak(&soak::SoakSizes::smoke(), true).await?;
        run_bus(&bus::BusSizes::smoke(), true).await?;
        run_filters(&filtered::FilterSizes::smoke(), true).await?;
        println!("smoke: 1 passed, 0 failed");
    } else if both {
        let dir = results_dir();
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("latest.md"), &table)?;
        std::fs::write(dir.join("latency.svg"), report::svg(&results))?;
        std::fs::write(dir.join("latest.json"), serde_json::to_string_pretty(&report::json(&results, &sizes))?)?;
        eprintln!("written to {}", dir.display());
    }
    Ok(())
}

/// Runs the filter benchmark; a smoke run fails on any lost delivery and writes nothing.
async fn run_filters(sizes: &filtered::FilterSizes, smoke: bool) -> anyhow::Result<()> {
    let rows = filtered::run(sizes).await?;
    let table = filtered::markdown(&rows, sizes);
    println!("{table}");
    if smoke {
        for row in &rows {
            anyhow::ensure!(row.lost == 0, "filters smoke: {} deliveries lost ({:?})", row.lost, row.setup);
        }
    } else {
        let dir = results_dir();
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("filters.md"), &table)?;
    }
    Ok(())
}

/// Runs the bus benchmark; a smoke run fails unless every publication was accepted and read,
/// and writes nothing.
async fn run_bus(sizes: &bus::BusSizes, smoke: bool) -> anyhow::Result<()> {
    let rows = bus::run(sizes, smoke).await?;
    let table = bus::markdown(&rows, sizes);
    println!("{table}");
    if !smoke {
        let dir = results_dir();
        std::fs::create_dir_all(&dir)?;
        let name = if sizes.real { "bus-real" } else { "bus" };
        std::fs::write(dir.join(format!("{name}.md")), &table)?;
        let json = serde_json::json!({"sizes": sizes, "rows": rows});
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

/// Runs the drop benchmark; a smoke run fails unless every Switchyard client got every
/// publication exactly once, in order (the crash row included), and writes nothing.
async fn run_drops(sizes: &drops::DropSizes, smoke: bool) -> anyhow::Result<()> {
    let outcomes = drops::run_all(sizes, scenarios::redis_url().as_deref(), smoke).await?;
    let table = drops::markdown(&outcomes, sizes);
    println!("{table}");
    if smoke {
        for o in outcomes.iter().filter(|o| o.setup.starts_with("Switchyard")) {
            let complete = o.complete == o.clients;
            let what = format!(
                "drops smoke: {}, {} delivered {:.3}% ({} of {} clients complete, {} duplicates, {} out of order)",
                o.scenario, o.setup, o.mean_share, o.complete, o.clients, o.duplicates, o.out_of_order
            );
            anyhow::ensure!(complete && o.duplicates == 0 && o.out_of_order == 0, "{what}");
        }
        return Ok(());
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("drops.md"), &table)?;
    std::fs::write(dir.join("drops.svg"), drops::svg(&outcomes))?;
    std::fs::write(
        dir.join("drops.json"),
        serde_json::to_string_pretty(&serde_json::json!({"sizes": sizes, "outcomes": outcomes}))?,
    )?;
    eprintln!("written to {}", dir.display());
    Ok(())
}

/// Runs the soak; a smoke run fails on any lost delivery and writes nothing.
async fn run_soak(sizes: &soak::SoakSizes, smoke: bool) -> anyhow::Result<()> {
    let report = soak::run(sizes).await?;
    let table = report.markdown(sizes);
    println!("{table}");
    if smoke {
        anyhow::ensure!(report.lost == 0, "soak smoke: {} deliveries lost", report.lost);
        return Ok(());
    }
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("soak.md"), &table)?;
    eprintln!("written to {}", dir.display());
    Ok(())
}

fn results_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
}
