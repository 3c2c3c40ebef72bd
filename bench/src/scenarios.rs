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

use crate::client::{Connection, Tally, next_source, now_us, set_per_source, token};
use crate::measure::{Measure, measure};
use crate::servers::{API_KEY, Kind, Server};

/// The public channel the fan-out sockets subscribe to (one of Switchyard's default patterns).
const FAN_OUT_CHANNEL: &str = "stores";

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct Sizes {
    /// Idle connections held (memory per connection).
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Then idle connections up to this many (0: stop at `idle`), spread over several loopback
    /// source addresses.
    #[arg(long, default_value_t = 100_000)]
    pub idle_max: usize,
    /// Seconds the idle connections are held afterwards; past the servers' 25 s ping interval
    /// every one must have answered a ping.
    #[arg(long, default_value_t = 30)]
    pub hold: u64,
    /// Rooms of the many-rooms fan-out...
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// ...and sockets in each.
    #[arg(long, default_value_t = 20)]
    pub per_room: usize,
    /// Connections per loopback source address (127.0.0.3, 127.0.0.4, …); one address has
    /// about 28,000 ephemeral ports.
    #[arg(long, default_value_t = 20_000)]
    pub per_source: usize,
    /// Which servers to run (e.g. only `switchyard` under a profiler).
    #[arg(long, value_delimiter = ',', default_value = "switchyard,node")]
    pub servers: Vec<Kind>,
    /// Subscribers on the second instance in the two-instance scenario.
    #[arg(long, default_value_t = 100)]
    pub cross_subscribers: usize,
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
    /// Only the two-instance scenario (to measure one change to it); printed, not written.
    #[arg(long)]
    pub cross_only: bool,
    /// An older Switchyard binary to run beside this build (and Node), the builds alternated
    /// round by round; prints each row's median and spread for old, new and Node.
    #[arg(long)]
    pub against: Option<std::path::PathBuf>,
    /// Rounds of `--against`.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

impl Sizes {
    pub fn smoke() -> Sizes {
        Sizes {
            idle: 200,
            idle_max: 300,
            hold: 0,
            rooms: 10,
            per_room: 5,
            cross_subscribers: 10,
            // Small, so that the smoke run goes through several source addresses too.
            per_source: 50,
            servers: vec![Kind::Switchyard, Kind::Node],
            room: 100,
            seconds: 1,
            paced_rate: 10,
            users: 20,
            sweep: vec![5, 20],
            cross_only: false,
            against: None,
            rounds: 3,
        }
    }
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
    let mut results =
        Results { switchyard: Vec::new(), node: Vec::new(), switchyard_curve: Vec::new(), node_curve: Vec::new() };
    let redis = redis_url();
    set_per_source(sizes.per_source);
    for &kind in &sizes.servers {
        let (out, curve, plain_kind) = match kind {
            Kind::Switchyard => (&mut results.switchyard, &mut results.switchyard_curve, Kind::Switchyard),
            Kind::Node => (&mut results.node, &mut results.node_curve, Kind::NodeWs),
            Kind::NodeWs => unreachable!("not a --servers choice"),
        };
        if sizes.cross_only {
            out.extend(cross_instance(kind, redis.as_deref(), sizes.cross_subscribers, sizes.seconds).await?);
            continue;
        }
        // Plain WebSocket memory first, on a server of its own.
        let plain_idle = {
            let server = Server::start(plain_kind)?;
            eprintln!("{plain_kind:?} on {}", server.addr);
            crate::plain::idle(&server, sizes.idle, sizes.hold).await?
        };
        {
            let server = Server::start(kind)?;
            eprintln!("{kind:?} on {}", server.addr);
            out.extend(idle(&server, sizes).await?);
            out.extend(plain_idle);
            out.extend(fan_out(&server, sizes.room, None, sizes.seconds).await?);
            out.extend(fan_out(&server, sizes.room, Some(sizes.paced_rate), sizes.seconds).await?);
            out.extend(many_rooms(&server, sizes.rooms, sizes.per_room, sizes.seconds).await?);
            out.extend(notify(&server, sizes.users, sizes.seconds).await?);
            out.extend(http_latency(&server, sizes.seconds).await?);
            for rate in &sizes.sweep {
                let run = fan_out_run(&server, sizes.room, Some(*rate), sizes.seconds).await?;
                curve.push(Point {
                    offered_per_s: (*rate as usize * sizes.room) as f64,
                    delivered_per_s: run.deliveries_per_s(),
                    p50_ms: run.p50_ms(),
                    p99_ms: run.p99_ms(),
                    lost: run.lost(),
                });
            }
        }
        out.extend(cross_instance(kind, redis.as_deref(), sizes.cross_subscribers, sizes.seconds).await?);
    }
    Ok(results)
}

/// The Redis the two-instance scenario uses: `BENCH_REDIS_URL`, else the test command's
/// `TEST_REDIS_URL`, else the default port; None when nothing answers there.
pub fn redis_url() -> Option<String> {
    let url = std::env::var("BENCH_REDIS_URL")
        .or_else(|_| std::env::var("TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let host_port = url.trim_start_matches("redis://").rsplit('@').next()?.split('/').next()?.to_owned();
    match std::net::TcpStream::connect_timeout(&host_port.parse().ok()?, Duration::from_secs(1)) {
        Ok(_) => Some(url),
        Err(error) => {
            eprintln!("no Redis answers at {url} ({error}): the two-instance scenario is skipped");
            None
        }
    }
}

/// Opens `n` connections of users `{prefix}{i}`, the i-th subscribed to `channel(i)` when it
/// names one.
async fn open_many(
    addr: &str,
    n: usize,
    prefix: &str,
    channel: impl Fn(usize) -> Option<String>,
) -> anyhow::Result<Vec<Connection>> {
    let connections: Vec<anyhow::Result<Connection>> = stream::iter(0..n)
        .map(|i| open_one(addr, format!("{prefix}{i}"), channel(i)))
        .buffer_unordered(256)
        .collect()
        .await;
    connections.into_iter().collect()
}

async fn open_one(addr: &str, user: String, channel: Option<String>) -> anyhow::Result<Connection> {
    let mut connection = Connection::open(addr, &token(&user), next_source()).await?;
    if let Some(channel) = channel {
        connection.subscribe(&channel).await?;
    }
    Ok(connection)
}

/// Runs receivers until told to stop; returns their tallies.
pub(crate) struct Receivers {
    stop: watch::Sender<bool>,
    total: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

/// What a set of receivers saw, summed.
pub(crate) struct Seen {
    pub(crate) received: u64,
    /// Publish → arrival.
    latency: Histogram<u64>,
    /// Publish → read by the generator.
    read_latency: Histogram<u64>,
    /// Connections that answered at least one ping and were still open at the end.
    answering: usize,
    /// Connections still open at the end.
    open: usize,
}

impl Receivers {
    pub(crate) fn start(connections: Vec<Connection>) -> Receivers {
        let (stop, _) = watch::channel(false);
        let mut receivers = Receivers { stop, total: Arc::new(AtomicU64::new(0)), tasks: Vec::new() };
        for connection in connections {
            receivers.add(connection);
        }
        receivers
    }

    fn add(&mut self, connection: Connection) {
        let task = connection.receive(self.stop.subscribe(), self.total.clone());
        self.tasks.push(tokio::spawn(task));
    }

    /// Waits until `expected` deliveries arrived, or nothing arrived for 3 s; returns when the
    /// last one came.
    pub(crate) async fn drain(&self, expected: u64) -> Instant {
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

    pub(crate) async fn finish(self) -> Seen {
        let _ = self.stop.send(true);
        let mut seen = Seen { received: 0, latency: histogram(), read_latency: histogram(), answering: 0, open: 0 };
        for task in self.tasks {
            if let Ok(tally) = task.await {
                seen.received += tally.received;
                for &us in &tally.latency {
                    let _ = seen.latency.record(us);
                }
                for &us in &tally.read_latency {
                    let _ = seen.read_latency.record(us);
                }
                seen.open += usize::from(!tally.closed);
                seen.answering += usize::from(!tally.closed && tally.pings > 0);
            }
        }
        seen
    }
}

/// Publications per request where a scenario publishes in batches (`POST /api/events/batch`), as
/// a backend sending many small notifications does: the server, not the HTTP round trips, is
/// then the bound.
const BATCH: usize = 100;

/// Publishes `body(i)` through `addr`'s HTTP API for `seconds`, at `rate` requests per second
/// (None: as fast as 8 concurrent publishers go), `batch` publications per request (1: one
/// `POST /api/events` each). Returns the acknowledged count.
pub(crate) async fn publish(
    addr: &str,
    seconds: u64,
    rate: Option<u64>,
    batch: usize,
    body: impl Fn(u64) -> serde_json::Value + Sync,
) -> u64 {
    let http = reqwest::Client::new();
    let url = if batch > 1 { format!("http://{addr}/api/events/batch") } else { format!("http://{addr}/api/events") };
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
            if batch > 1 {
                let first = i * batch as u64;
                let events: Vec<serde_json::Value> = (first..first + batch as u64).map(&body).collect();
                let sent = http
                    .post(&url)
                    .header("x-api-key", API_KEY)
                    .json(&serde_json::json!({"events": events}))
                    .send()
                    .await;
                let Ok(response) = sent else { continue };
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                let accepted =
                    answer["results"].as_array().map_or(0, |r| r.iter().filter(|r| r["status"] == 202).count());
                acked.fetch_add(accepted as u64, Ordering::Relaxed);
                continue;
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

/// (1) Idle connections: memory per connection at `idle`, then at the largest count reached up
/// to `idle_max`; held for `hold` seconds, every one answering pings meanwhile.
async fn idle(server: &Server, sizes: &Sizes) -> anyhow::Result<Vec<Measure>> {
    let before = server.rss_kib();
    let per_connection = |rss: u64, n: usize| rss.saturating_sub(before) as f64 * 1024.0 / n.max(1) as f64;
    // Receivers run from the first connection on: opening 100,000 takes longer than a ping
    // interval plus its timeout.
    let mut receivers = Receivers::start(Vec::new());
    let mut failed = 0usize;
    let mut opened = 0usize;
    let mut at_first = None;
    let target = sizes.idle.max(sizes.idle_max);
    let mut pending = stream::iter(0..target).map(|i| open_one(&server.addr, format!("idle-{i}"), None)).buffered(256);
    while let Some(connection) = pending.next().await {
        match connection {
            Ok(connection) => {
                receivers.add(connection);
                opened += 1;
            }
            Err(error) => {
                if failed == 0 {
                    eprintln!("idle connection refused after {opened}: {error:#}");
                }
                failed += 1;
            }
        }
        if opened + failed == sizes.idle {
            tokio::time::sleep(Duration::from_millis(500)).await;
            at_first = Some((server.rss_kib(), opened));
        }
        if failed > 1000 {
            break;
        }
    }
    drop(pending);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_max = server.rss_kib();
    eprintln!("  {opened} idle connections open ({failed} refused), holding {} s", sizes.hold);
    tokio::time::sleep(Duration::from_secs(sizes.hold)).await;
    let seen = receivers.finish().await;
    let (first_rss, first_n) = at_first.unwrap_or((at_max, opened));
    // Past the ping interval every connection must have answered a ping; before it, merely
    // still be open.
    let held = if sizes.hold > PING_INTERVAL_S { seen.answering } else { seen.open };
    let lost = (target - held) as i64;
    let mut out =
        vec![measure("idle connections", IDLE_AT_FIRST, "bytes", false, per_connection(first_rss, first_n), 0)];
    if sizes.idle_max > sizes.idle {
        out.push(measure("idle connections", IDLE_AT_MAX, "bytes", false, per_connection(at_max, opened), 0));
        out.push(measure("idle connections", "connections held, answering pings", "count", true, held as f64, lost));
    }
    Ok(out)
}

/// Both servers' Socket.IO ping interval (their defaults), in seconds.
const PING_INTERVAL_S: u64 = 25;
const IDLE_AT_FIRST: &str = "memory per connection, first count";
const IDLE_AT_MAX: &str = "memory per connection, largest count";

/// What one load run delivered.
struct Run {
    expected: u64,
    received: u64,
    /// Seconds from the first publish to the last delivery.
    elapsed: f64,
    /// Server CPU seconds over the same span (NaN when not measured).
    cpu: f64,
    /// Publish → arrival.
    latency: Histogram<u64>,
    /// Publish → read by the generator.
    read_latency: Histogram<u64>,
}

impl Run {
    fn lost(&self) -> i64 {
        self.expected as i64 - self.received as i64
    }
    fn deliveries_per_s(&self) -> f64 {
        self.received as f64 / self.elapsed
    }
    /// Server CPU time per delivery, in microseconds.
    fn cpu_us_per_delivery(&self) -> f64 {
        self.cpu * 1e6 / self.received.max(1) as f64
    }
    fn p50_ms(&self) -> f64 {
        ms(&self.latency, 0.5)
    }
    fn p99_ms(&self) -> f64 {
        ms(&self.latency, 0.99)
    }
}

/// How publications are sent: `rate` requests per second (None: as fast as possible), `batch`
/// publications per request, for `seconds`.
struct Pace {
    rate: Option<u64>,
    batch: usize,
    seconds: u64,
}

/// Publishes `body(i)` through `publish_on` to `receivers` (connected already), each
/// publication reaching `audience` of them, at `pace`; waits for every delivery (or 3 s of
/// silence). Server CPU is read from `cpu_of` when given.
async fn load(
    publish_on: &str,
    cpu_of: Option<&Server>,
    receivers: Receivers,
    audience: usize,
    pace: Pace,
    body: impl Fn(u64) -> serde_json::Value + Sync,
) -> Run {
    let cpu_before = cpu_of.map(Server::cpu_seconds);
    let start = Instant::now();
    let acked = publish(publish_on, pace.seconds, pace.rate, pace.batch, body).await;
    let expected = acked * audience as u64;
    let last = receivers.drain(expected).await;
    let elapsed = last.duration_since(start).as_secs_f64();
    let cpu = match (cpu_of, cpu_before) {
        (Some(server), Some(before)) => server.cpu_seconds() - before,
        _ => f64::NAN,
    };
    let seen = receivers.finish().await;
    Run { expected, received: seen.received, elapsed, cpu, latency: seen.latency, read_latency: seen.read_latency }
}

/// One room of `room` sockets, publishes at `rate` (None: as fast as possible).
async fn fan_out_run(server: &Server, room: usize, rate: Option<u64>, seconds: u64) -> anyhow::Result<Run> {
    let receivers = Receivers::start(open_many(&server.addr, room, "fan-", |_| Some(FAN_OUT_CHANNEL.into())).await?);
    Ok(load(&server.addr, Some(server), receivers, room, Pace { rate, batch: 1, seconds }, |_| {
        serde_json::json!({"event": "store_updated", "to": {"channel": FAN_OUT_CHANNEL}, "data": {"storeId": "s", "t": now_us()}})
    })
    .await)
}

/// (2) One room: deliveries per second at saturation, or (3) latency at a paced rate.
async fn fan_out(server: &Server, room: usize, rate: Option<u64>, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let run = fan_out_run(server, room, rate, seconds).await?;
    let lost = run.lost();
    Ok(match rate {
        None => vec![
            measure("fan-out, one room", "deliveries/s at saturation", "1/s", true, run.deliveries_per_s(), lost),
            measure("fan-out, one room", "p50 at saturation", "ms", false, run.p50_ms(), lost),
            measure(
                "fan-out, one room",
                "server CPU per delivery at saturation",
                "µs",
                false,
                run.cpu_us_per_delivery(),
                lost,
            ),
        ],
        Some(_) => vec![
            measure("paced fan-out", "p50 publish→receive", "ms", false, run.p50_ms(), lost),
            measure("paced fan-out", "p99 publish→receive", "ms", false, run.p99_ms(), lost),
            measure(
                "paced fan-out",
                "p99 publish→read by the generator",
                "ms",
                false,
                ms(&run.read_latency, 0.99),
                lost,
            ),
            measure("paced fan-out", "server CPU per delivery", "µs", false, run.cpu_us_per_delivery(), lost),
        ],
    })
}

/// (4) 1:1 notifications: each publication to one user's room, round robin, in batches.
async fn notify(server: &Server, users: usize, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let receivers = Receivers::start(open_many(&server.addr, users, "user-", |_| None).await?);
    let run = load(&server.addr, Some(server), receivers, 1, Pace { rate: None, batch: BATCH, seconds }, |i| {
        // message:new, not notification:new, which Switchyard also keeps in an inbox.
        serde_json::json!({"event": "message:new", "to": {"user": format!("user-{}", i as usize % users)}, "data": {"t": now_us()}})
    })
    .await;
    Ok(vec![
        measure(
            "1:1 notify",
            "deliveries/s at saturation (batches of 100)",
            "1/s",
            true,
            run.deliveries_per_s(),
            run.lost(),
        ),
        measure("1:1 notify", "server CPU per delivery", "µs", false, run.cpu_us_per_delivery(), run.lost()),
    ])
}

/// Publishes per second of the HTTP latency scenario: one at a time (each answered in ~0.1 ms),
/// and enough of them (1,000 in 5 s) that the p99 is not the 3rd worst of 250.
const HTTP_LATENCY_RATE: u64 = 200;

/// (5) HTTP publish → delivery latency for one subscriber at a gentle rate.
async fn http_latency(server: &Server, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let run = gentle(&server.addr, &server.addr, 1, "solo-", HTTP_LATENCY_RATE, seconds).await?;
    Ok(vec![
        measure("HTTP publish → delivery", "p50", "ms", false, run.p50_ms(), run.lost()),
        measure("HTTP publish → delivery", "p99", "ms", false, run.p99_ms(), run.lost()),
    ])
}

/// (3b) Many small rooms: `rooms` channels of `per_room` sockets, publications round robin in
/// batches, as fast as 8 publishers go.
async fn many_rooms(server: &Server, rooms: usize, per_room: usize, seconds: u64) -> anyhow::Result<Vec<Measure>> {
    let channel = |i: usize| format!("store:{}", i % rooms);
    let receivers = Receivers::start(open_many(&server.addr, rooms * per_room, "rooms-", |i| Some(channel(i))).await?);
    let pace = Pace { rate: None, batch: BATCH, seconds };
    let run = load(&server.addr, Some(server), receivers, per_room, pace, |i| {
        serde_json::json!({"event": "product_updated", "to": {"channel": channel(i as usize)}, "data": {"storeId": "s", "t": now_us()}})
    })
    .await;
    Ok(vec![
        measure(
            "many rooms",
            "deliveries/s at saturation (batches of 100)",
            "1/s",
            true,
            run.deliveries_per_s(),
            run.lost(),
        ),
        measure("many rooms", "server CPU per delivery", "µs", false, run.cpu_us_per_delivery(), run.lost()),
    ])
}

/// (6) Two instances sharing one Redis (Switchyard's own cross-instance path; Node with the
/// official redis-adapter): subscribers on the second instance, 50 publishes/s through the
/// first. The added latency is against the same load on one instance without Redis, the two
/// alternated [`CROSS_ROUNDS`] times.
async fn cross_instance(
    kind: Kind,
    redis: Option<&str>,
    subscribers: usize,
    seconds: u64,
) -> anyhow::Result<Vec<Measure>> {
    const SCENARIO: &str = "two instances via Redis";
    let Some(redis) = redis else {
        return Ok(vec![
            measure(SCENARIO, "p50 through the other instance", "ms", false, f64::NAN, 0),
            measure(SCENARIO, "p99 through the other instance", "ms", false, f64::NAN, 0),
            measure(SCENARIO, ADDED_P50, "ms", false, f64::NAN, 0),
        ]);
    };
    let alone = Server::start(kind)?;
    // A prefix of its own, so runs sharing a Redis never see each other's messages.
    let prefix = format!("bench-{}-{kind:?}-", std::process::id());
    let env = [("REDIS_URL", redis.to_owned()), ("REDIS_CHANNEL_PREFIX", prefix)];
    let first = Server::start_with(kind, &env)?;
    let second = Server::start_with(kind, &env)?;
    eprintln!("{kind:?} alone on {}; two instances on {} and {} via {redis}", alone.addr, first.addr, second.addr);
    let (mut through, mut through_p99, mut added, mut lost) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for round in 0..CROSS_ROUNDS {
        let here =
            gentle(&alone.addr, &alone.addr, subscribers, &format!("alone{round}-"), CROSS_RATE, seconds).await?;
        let cross =
            gentle(&first.addr, &second.addr, subscribers, &format!("cross{round}-"), CROSS_RATE, seconds).await?;
        lost += here.lost() + cross.lost();
        through.push(cross.p50_ms());
        through_p99.push(cross.p99_ms());
        added.push(cross.p50_ms() - here.p50_ms());
    }
    Ok(vec![
        measure(SCENARIO, "p50 through the other instance", "ms", false, median(&mut through), lost),
        measure(SCENARIO, "p99 through the other instance", "ms", false, median(&mut through_p99), lost),
        measure(SCENARIO, ADDED_P50, "ms", false, median(&mut added), lost),
    ])
}

/// Rounds of the two-instance scenario: one instance alone and the pair through Redis,
/// alternated, the figures the median of the rounds. The added latency is a difference of two
/// p50s, and a single pair of runs moved it by ±0.2 ms (x1.35 to x9.6 between runs).
const CROSS_ROUNDS: usize = 3;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub const ADDED_P50: &str = "added p50 (against one instance without Redis)";

/// Publishes per second of the two-instance scenario.
const CROSS_RATE: u64 = 50;

/// `subscribers` users connected to `receive_on`, `rate` publishes/s to all of them through
/// `publish_on`, one at a time.
async fn gentle(
    publish_on: &str,
    receive_on: &str,
    subscribers: usize,
    prefix: &str,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Run> {
    let users: Vec<String> = (0..subscribers).map(|i| format!("{prefix}{i}")).collect();
    let receivers = Receivers::start(open_many(receive_on, subscribers, prefix, |_| None).await?);
    Ok(load(
        publish_on,
        None,
        receivers,
        subscribers,
        Pace { rate: Some(rate), batch: 1, seconds },
        |_| serde_json::json!({"event": "message:new", "to": {"user": users}, "data": {"t": now_us()}}),
    )
    .await)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn ms(latency: &Histogram<u64>, quantile: f64) -> f64 {
    latency.value_at_quantile(quantile) as f64 / 1000.0
}
