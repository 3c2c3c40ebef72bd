//! The scenarios, each run against one server at a time with fresh connections.
//!
//! Every scenario counts lost deliveries: what was published and acknowledged, times its
//! audience, minus what arrived (negative would be duplicates).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

use crate::client::{Connection, Tally, now_us, token};
use crate::servers::{API_KEY, Kind, Server};

/// The public channel the fan-out sockets subscribe to (one of Switchyard's default patterns).
const FAN_OUT_CHANNEL: &str = "stores";

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Sizes {
    /// Idle connections held (memory per connection).
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Sockets in the fan-out room.
    #[arg(long, default_value_t = 2_000)]
    pub room: usize,
    /// Seconds of load per scenario.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Publishes per second for the paced fan-out latency (times `room` = deliveries/s).
    #[arg(long, default_value_t = 20)]
    pub paced_rate: u64,
    /// Users (one socket each) for 1:1 notifications.
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Publish rates (per second) of the latency curve: deliveries/s = rate × room.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,40,80,160")]
    pub sweep: Vec<u64>,
}

impl Sizes {
    pub fn smoke() -> Sizes {
        Sizes {
            idle: 200,
            room: 100,
            seconds: 1,
            paced_rate: 10,
            users: 20,
            sweep: vec![5, 20],
        }
    }
}

/// One measured figure of one server.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub scenario: &'static str,
    pub metric: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub value: f64,
    pub lost: i64,
}

/// One point of the latency curve: an offered fan-out rate and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub offered_per_s: f64,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lost: i64,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub switchyard: Vec<Measure>,
    pub node: Vec<Measure>,
    pub switchyard_curve: Vec<Point>,
    pub node_curve: Vec<Point>,
}

pub async fn run_all(sizes: &Sizes) -> anyhow::Result<Results> {
    let mut results = Results {
        switchyard: Vec::new(),
        node: Vec::new(),
        switchyard_curve: Vec::new(),
        node_curve: Vec::new(),
    };
    for kind in [Kind::Switchyard, Kind::Node] {
        let server = Server::start(kind)?;
        eprintln!("{kind:?} on {}", server.addr);
        let (out, curve) = match kind {
            Kind::Switchyard => (&mut results.switchyard, &mut results.switchyard_curve),
            Kind::Node => (&mut results.node, &mut results.node_curve),
        };
        out.extend(idle(&server, sizes.idle).await?);
        out.extend(fan_out(&server, sizes.room, None, sizes.seconds).await?);
        out.extend(fan_out(&server, sizes.room, Some(sizes.paced_rate), sizes.seconds).await?);
        out.extend(notify(&server, sizes.users, sizes.seconds).await?);
        out.extend(http_latency(&server, sizes.seconds).await?);
        for rate in &sizes.sweep {
            let run = fan_out_run(&server, sizes.room, Some(*rate), sizes.seconds).await?;
            curve.push(Point {
                offered_per_s: (*rate as usize * sizes.room) as f64,
                delivered_per_s: run.received as f64 / run.elapsed,
                p50_ms: run.p50_ms(),
                p99_ms: run.p99_ms(),
                lost: run.lost(),
            });
        }
    }
    Ok(results)
}

/// Opens `n` connections of users `{prefix}{i}`, each subscribed to `channel` when given.
async fn open_many(server: &Server, n: usize, prefix: &str, channel: Option<&str>) -> anyhow::Result<Vec<Connection>> {
    let addr = server.addr.clone();
    let connections: Vec<anyhow::Result<Connection>> = stream::iter(0..n)
        .map(|i| {
            let addr = addr.clone();
            let token = token(&format!("{prefix}{i}"));
            async move {
                let mut connection = Connection::open(&addr, &token).await?;
                if let Some(channel) = channel {
                    connection.subscribe(channel).await?;
                }
                Ok(connection)
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    connections.into_iter().collect()
}

/// Runs receivers until told to stop; returns their tallies.
struct Receivers {
    stop: watch::Sender<bool>,
    total: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Receivers {
    fn start(connections: Vec<Connection>) -> Receivers {
        let (stop, stopped) = watch::channel(false);
        let total = Arc::new(AtomicU64::new(0));
        let tasks = connections
            .into_iter()
            .map(|c| tokio::spawn(c.receive(stopped.clone(), total.clone())))
            .collect();
        Receivers { stop, total, tasks }
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for 3 s; returns when the
    /// last one came.
    async fn drain(&self, expected: u64) -> Instant {
        let mut last = self.total.load(Ordering::Relaxed);
        let mut last_change = Instant::now();
        while last < expected && last_change.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = self.total.load(Ordering::Relaxed);
            if now != last {
                last = now;
                last_change = Instant::now();
            }
        }
        last_change
    }

    async fn finish(self) -> (u64, Histogram<u64>) {
        let _ = self.stop.send(true);
        let mut received = 0;
        let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
        for task in self.tasks {
            if let Ok(tally) = task.await {
                received += tally.received;
                let _ = latency.add(&tally.latency);
            }
        }
        (received, latency)
    }
}

/// Publishes `body(i)` for `seconds`, at `rate` per second (None: as fast as 8 concurrent
/// publishers go). Returns the acknowledged count.
async fn publish(server: &Server, seconds: u64, rate: Option<u64>, body: impl Fn(u64) -> serde_json::Value + Sync) -> u64 {
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/events", server.addr);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let acked = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    let publishers = if rate.is_some() { 1 } else { 8 };
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
    let start = Instant::now();
    let one = || async {
        while Instant::now() < deadline {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if let Some(interval) = interval {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
            }
            let sent = http.post(&url).header("x-api-key", API_KEY).json(&body(i)).send().await;
            if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    futures_util::future::join_all((0..publishers).map(|_| one())).await;
    acked.load(Ordering::Relaxed)
}

fn measure(scenario: &'static str, metric: &'static str, unit: &'static str, higher_is_better: bool, value: f64, lost: i64) -> Measure {
    Measure {
        scenario,
        metric,
        unit,
        higher_is_better,
        value,
        lost,
    }
}

/// (1) Idle connections: memory per connection.
async fn idle(server: &Server, n: usize) -> anyhow::Result<Vec<Measure>> {
    let before = server.rss_kib();
    let connections = open_many(server, n, "idle-", None).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    let receivers = Receivers::start(connections);
    receivers.finish().await;
    let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    Ok(vec![measure("idle connections", "memory per connection", "bytes", false, per_connection, 0)])
}

/// What one fan-out run delivered.
struct Run {
    expected: u64,
    received: u64,
    /// Seconds from the first publish to the last delivery.
    elapsed: f64,
    latency: Histogram<u64>,
}

impl Run {
    fn lost(&self) -> i64 {
        self.expected as i64 - self.received as i64
    }
    fn p50_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.5) as f64 / 1000.0
    }
    fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// One room of `room` sockets, publishes at `rate` (None: as fast as possible).
async fn fan_out_run(server: &Server, room: usize, rate: Option<u64>, seconds: u64) -> anyhow::Result<Run> {
    let receivers = Receivers::start(open_many(server, room, "fan-", Some(FAN_OUT_CHANNEL)).await?);
    let start = Instant::now();
    let acked = publish(server, seconds, rate, |_| {
        serde_json::json!({"event": "store_updated", "to": {"channel": FAN_OUT_CHANNEL}, "data": {"storeId": "s", "t": now_us()}})
    })
    .await;
    let expected = acked * room as u64;
    let last = receivers.drain(expected).await;
    let elapsed = last.duration_since(start).as_secs_f64();
    let (received, latency) = receivers.finish().await;
    Ok(Run {
        expected,
        received,
        elapsed,
        latency,
    })
}

/// (2) One room: deliveries per second at saturation, or (3) latency at a paced rate.
async fn fan_out(server: &Server, room: usize, rate: Option<u64>, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let run = fan_out_run(server, room, rate, seconds).await?;
    let lost = run.lost();
    Ok(match rate {
        None => vec![
            measure("fan-out, one room", "deliveries/s at saturation", "1/s", true, run.received as f64 / run.elapsed, lost),
            measure("fan-out, one room", "p50 at saturation", "ms", false, run.p50_ms(), lost),
        ],
        Some(_) => vec![
            measure("paced fan-out", "p50 publish→receive", "ms", false, run.p50_ms(), lost),
            measure("paced fan-out", "p99 publish→receive", "ms", false, run.p99_ms(), lost),
        ],
    })
}

/// (4) 1:1 notifications: each publish to one user's room, round robin.
async fn notify(server: &Server, users: usize, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let receivers = Receivers::start(open_many(server, users, "user-", None).await?);
    let start = Instant::now();
    let acked = publish(server, seconds, None, |i| {
        // message:new, not notification:new, which Switchyard also keeps in an inbox.
        serde_json::json!({"event": "message:new", "to": {"user": format!("user-{}", i as usize % users)}, "data": {"t": now_us()}})
    })
    .await;
    let last = receivers.drain(acked).await;
    let elapsed = last.duration_since(start).as_secs_f64();
    let (received, latency) = receivers.finish().await;
    let lost = acked as i64 - received as i64;
    Ok(vec![
        measure("1:1 notify", "deliveries/s", "1/s", true, received as f64 / elapsed, lost),
        measure("1:1 notify", "p99 publish→receive", "ms", false, latency.value_at_quantile(0.99) as f64 / 1000.0, lost),
    ])
}

/// (5) HTTP publish → delivery latency for one subscriber at a gentle rate.
async fn http_latency(server: &Server, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let receivers = Receivers::start(open_many(server, 1, "solo-", None).await?);
    let acked = publish(server, seconds, Some(50), |_| {
        serde_json::json!({"event": "message:new", "to": {"user": "solo-0"}, "data": {"t": now_us()}})
    })
    .await;
    receivers.drain(acked).await;
    let (received, latency) = receivers.finish().await;
    let lost = acked as i64 - received as i64;
    Ok(vec![
        measure("HTTP publish → delivery", "p50", "ms", false, latency.value_at_quantile(0.5) as f64 / 1000.0, lost),
        measure("HTTP publish → delivery", "p99", "ms", false, latency.value_at_quantile(0.99) as f64 / 1000.0, lost),
    ])
}
