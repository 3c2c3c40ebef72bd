//! Filters (SPEC H5) at fan-out (`switchyard-bench filters`): one room of `--room` Switchyard
//! sockets (the `stores` channel), publications from 8 publishers as fast as they go, in three
//! setups on one server:
//!
//! - *nobody filters*: the figure to match;
//! - *half filter, all pass*: half the sockets subscribed with a filter every publication
//!   passes (`events: ["store_*"]`): the same deliveries, so what the filter groups cost;
//! - *half filter, half pass*: their filter passes every other publication (`where: {even: true}`):
//!   what they save.
//!
//! Each setup runs `--rounds` times, alternating, and each figure is the median. Deliveries/s,
//! server CPU per delivery, and deliveries lost (acknowledged × audience − received). Node has
//! no filters: there is no reference column. Written to `bench/results/filters.md`.

use std::time::Instant;

use futures_util::{StreamExt, stream};
use serde::Serialize;

use crate::client::{Connection, next_source, now_us, token};
use crate::scenarios::{Receivers, publish};
use crate::servers::{Kind, Server};

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct FilterSizes {
    /// Sockets in the room.
    #[arg(long, default_value_t = 2_000)]
    pub room: usize,
    /// Seconds of publishing per run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Runs of each setup (alternating); figures are medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

impl FilterSizes {
    pub fn smoke() -> FilterSizes {
        FilterSizes { room: 40, seconds: 1, rounds: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Setup {
    NobodyFilters,
    HalfFilterAllPass,
    HalfFilterHalfPass,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::NobodyFilters, Setup::HalfFilterAllPass, Setup::HalfFilterHalfPass];

    fn label(self) -> &'static str {
        match self {
            Setup::NobodyFilters => "nobody filters",
            Setup::HalfFilterAllPass => "half filter, every publication passes",
            Setup::HalfFilterHalfPass => "half filter, every other publication passes",
        }
    }

    /// The `subscribe` payload of socket `i`.
    fn subscription(self, i: usize) -> serde_json::Value {
        let channel = CHANNEL;
        match self {
            _ if i.is_multiple_of(2) => serde_json::json!({ "channel": channel }),
            Setup::NobodyFilters => serde_json::json!({ "channel": channel }),
            Setup::HalfFilterAllPass => serde_json::json!({ "channel": channel, "events": ["store_*"] }),
            Setup::HalfFilterHalfPass => serde_json::json!({ "channel": channel, "where": { "even": true } }),
        }
    }
}

const CHANNEL: &str = "stores";

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub setup: Setup,
    pub deliveries_per_s: f64,
    pub cpu_us_per_delivery: f64,
    /// Server CPU per publication accepted: what a publication costs, whoever it reaches.
    pub cpu_us_per_publication: f64,
    pub lost: i64,
}

pub async fn run(sizes: &FilterSizes) -> anyhow::Result<Vec<Row>> {
    let server = Server::start(Kind::Switchyard)?;
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); Setup::ALL.len()];
    for _ in 0..sizes.rounds {
        for (i, setup) in Setup::ALL.into_iter().enumerate() {
            runs[i].push(one(&server, sizes, setup).await?);
        }
    }
    Ok(runs
        .into_iter()
        .map(|rows| {
            let median = |f: fn(&Row) -> f64| {
                let mut values: Vec<f64> = rows.iter().map(f).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            Row {
                setup: rows[0].setup,
                deliveries_per_s: median(|r| r.deliveries_per_s),
                cpu_us_per_delivery: median(|r| r.cpu_us_per_delivery),
                cpu_us_per_publication: median(|r| r.cpu_us_per_publication),
                lost: rows.iter().map(|r| r.lost).sum(),
            }
        })
        .collect())
}

async fn one(server: &Server, sizes: &FilterSizes, setup: Setup) -> anyhow::Result<Row> {
    let connections: Vec<anyhow::Result<Connection>> = stream::iter(0..sizes.room)
        .map(|i| async move {
            let mut connection = Connection::open(&server.addr, &token(&format!("filter-{i}")), next_source()).await?;
            connection.subscribe_with(&setup.subscription(i)).await?;
            Ok(connection)
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let receivers = Receivers::start(connections.into_iter().collect::<anyhow::Result<_>>()?);
    let cpu_before = server.cpu_seconds();
    let start = Instant::now();
    let body = |i: u64| serde_json::json!({"event": "store_updated", "to": {"channel": CHANNEL}, "data": {"storeId": "s", "even": i.is_multiple_of(2), "t": now_us()}});
    let acked = publish(&server.addr, sizes.seconds, None, 1, body).await;
    let (unfiltered, filtered) = (sizes.room.div_ceil(2) as u64, (sizes.room / 2) as u64);
    // Publications are numbered from 0 and nearly all acknowledged: the even ones are half, rounded up.
    let passing = if setup == Setup::HalfFilterHalfPass { acked.div_ceil(2) } else { acked };
    let expected = acked * unfiltered + passing * filtered;
    let last = receivers.drain(expected).await;
    let elapsed = last.duration_since(start).as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let seen = receivers.finish().await;
    Ok(Row {
        setup,
        deliveries_per_s: seen.received as f64 / elapsed,
        cpu_us_per_delivery: cpu * 1e6 / seen.received.max(1) as f64,
        cpu_us_per_publication: cpu * 1e6 / acked.max(1) as f64,
        lost: expected as i64 - seen.received as i64,
    })
}

pub fn markdown(rows: &[Row], sizes: &FilterSizes) -> String {
    let base = rows.iter().find(|r| r.setup == Setup::NobodyFilters);
    let mut out = format!(
        "## Filters at fan-out: one room of {} sockets, {} s per run, median of {}\n\n\
         | setup | deliveries/s | vs nobody filters | server CPU per delivery (µs) | vs nobody filters | server CPU per publication (µs) | vs nobody filters | lost |\n\
         |---|---|---|---|---|---|---|---|\n",
        sizes.room, sizes.seconds, sizes.rounds
    );
    for row in rows {
        let ratio = |a: f64, b: Option<f64>| b.map_or("".into(), |b| format!("×{:.2}", a / b));
        out += &format!(
            "| {} | {:.0} | {} | {:.2} | {} | {:.0} | {} | {} |\n",
            row.setup.label(),
            row.deliveries_per_s,
            ratio(row.deliveries_per_s, base.map(|b| b.deliveries_per_s)),
            row.cpu_us_per_delivery,
            ratio(row.cpu_us_per_delivery, base.map(|b| b.cpu_us_per_delivery)),
            row.cpu_us_per_publication,
            ratio(row.cpu_us_per_publication, base.map(|b| b.cpu_us_per_publication)),
            row.lost
        );
    }
    out
}
