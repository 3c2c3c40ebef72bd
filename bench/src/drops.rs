//! The drop benchmark (AnyCable's figure): clients receive a steady stream while a share of
//! them is cut off every second; at the end, the share of the publications each client received
//! exactly once and in order. Every client opts into its server's recovery: Switchyard's
//! `auth.offset` cursor, or the stock client's own `pid`/`offset` handshake for Node's
//! connection state recovery. A client that comes back unrecovered subscribes again, as an app
//! does, and has lost what was published while it was away. Each client is a user of its own
//! (Switchyard caps one user's connections, `MAX_CONNECTIONS_PER_USER`).
//!
//! Three disruptions, each against the setups it applies to:
//! - cuts: `cut_share` of the clients cut every second. Switchyard, two instances and Redis;
//!   Node socket.io 4.8 with `connectionStateRecovery` on one node; Node, two nodes with the
//!   official Redis adapter (recovery unsupported); Node, two nodes with the Redis streams
//!   adapter (recovery supported across nodes).
//! - rolling restart: three instances, each in turn taken out of rotation, sent SIGTERM, waited
//!   for until it has exited and replaced by a new one (same environment, same Redis prefix)
//!   that is listening before the next goes; no other cut. Switchyard with `SHUTDOWN_DRAIN=0`
//!   and with `SHUTDOWN_DRAIN=5s`; Node with either adapter (the reference closes its sockets
//!   with `io.close()` at SIGTERM, which persists recoverable sessions).
//! - crash: SIGKILL to one of two instances halfway, no other cut; the same three two-instance
//!   setups as the cuts.
//!
//! Clients go where a load balancer would send them: first spread over the instances, after a
//! lost connection to one of the instances in rotation other than the one they left (spread
//! over them). For the restart and the crash, every client knows which instance each of its
//! connections reached and when it completed: the peak of reconnects per second any one
//! surviving instance saw.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{handshake, token};
use crate::servers::{API_KEY, Kind, Server};

/// The public channel every client subscribes to (a default channel pattern of Switchyard).
const CHANNEL: &str = "venue:drop";

/// Switchyard's default `MAX_CONNECTIONS_PER_USER`: the smoke run has more clients than this, so
/// that clients sharing a user would fail it as they fail the full-size run.
const PER_USER_CAP: usize = 50;

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct DropSizes {
    /// Clients receiving the stream.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Publications per second (each to every client).
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
    /// Share of the clients cut off every second.
    #[arg(long, default_value_t = 0.10)]
    pub cut_share: f64,
    /// Only the rows whose scenario or setup contains this text (e.g. `crash`, `streams`);
    /// every row when absent.
    #[arg(long)]
    pub only: Option<String>,
}

impl DropSizes {
    pub fn smoke() -> DropSizes {
        DropSizes { clients: PER_USER_CAP + 10, seconds: 3, rate: 10, cut_share: 0.10, only: None }
    }
}

/// What one setup delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `cuts`, `rolling restart` or `crash`.
    pub scenario: &'static str,
    pub setup: String,
    pub clients: usize,
    pub published: u64,
    /// Mean over clients of (publications received once, in order) / published, in percent.
    pub mean_share: f64,
    pub min_share: f64,
    /// Clients that received every publication exactly once, in order.
    pub complete: usize,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub cuts: u64,
    /// Reconnections the server reported as recovered.
    pub recovered: u64,
    /// Rolling restart and crash: connections completed after each client's first, all at
    /// instances in rotation, survivors of the stops (none for the cuts).
    pub reconnects: Option<u64>,
    /// The most of those any one instance completed within one second (a sliding window), over
    /// every instance and every step of the restart.
    pub reconnect_peak_per_s: Option<u64>,
    /// Seconds from the first of those reconnects to the last.
    pub reconnect_span_s: Option<f64>,
    /// Rolling restart: seconds from the first SIGTERM to the last replacement listening.
    pub restart_s: Option<f64>,
}

/// The servers of a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Two instances and Redis, with `SHUTDOWN_DRAIN` when given.
    Switchyard { drain: Option<&'static str> },
    /// One node, `connectionStateRecovery` on.
    NodeOne,
    /// Two nodes, `@socket.io/redis-adapter`, recovery on (which that adapter does not support).
    NodeRedis,
    /// Two nodes, `@socket.io/redis-streams-adapter`, recovery on (supported across nodes).
    NodeStreams,
}

impl Setup {
    /// The row's name, with its number of instances.
    fn name(self, instances: usize) -> String {
        match self {
            Setup::Switchyard { drain: None } => format!("Switchyard, {instances} instances + Redis"),
            Setup::Switchyard { drain: Some(drain) } => {
                format!("Switchyard, {instances} instances + Redis, SHUTDOWN_DRAIN={drain}")
            }
            Setup::NodeOne => "Node 4.8, 1 node, connectionStateRecovery".to_owned(),
            Setup::NodeRedis => format!("Node 4.8, {instances} nodes + redis-adapter"),
            Setup::NodeStreams => format!("Node 4.8, {instances} nodes + redis-streams-adapter"),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Setup::Switchyard { .. } => Kind::Switchyard,
            _ => Kind::Node,
        }
    }

    /// Every instance's environment; `prefix` keeps this row's Redis channels and keys apart
    /// from every other run's (tests and benchmarks share one Redis). A replacement gets the
    /// same.
    fn env(self, redis: Option<&str>, prefix: String) -> anyhow::Result<Vec<(&'static str, String)>> {
        let redis = || redis.map(str::to_owned).context("a multi-instance setup without Redis");
        Ok(match self {
            Setup::Switchyard { drain } => {
                let mut env = vec![("REDIS_URL", redis()?), ("REDIS_CHANNEL_PREFIX", prefix)];
                env.extend(drain.map(|d| ("SHUTDOWN_DRAIN", d.to_owned())));
                env
            }
            Setup::NodeOne => vec![("RECOVERY", "1".into())],
            Setup::NodeRedis | Setup::NodeStreams => {
                let adapter = if self == Setup::NodeStreams { "streams" } else { "redis" };
                vec![
                    ("REDIS_URL", redis()?),
                    ("REDIS_CHANNEL_PREFIX", prefix),
                    ("RECOVERY", "1".into()),
                    ("ADAPTER", adapter.into()),
                ]
            }
        })
    }
}

/// Runs every row (those `sizes.only` picks); without `redis` only the one-node row runs, and
/// `smoke` leaves out the rows whose code path another row already takes (the Node crash rows
/// and the streams adapter: the same client, the same stop as the Node rolling restart) and
/// drains for 1 s instead of 5 (three drains in a row).
pub async fn run_all(sizes: &DropSizes, redis: Option<&str>, smoke: bool) -> anyhow::Result<Vec<Outcome>> {
    let switchyard = Setup::Switchyard { drain: None };
    let mut plan = vec![(Disruption::Cuts, switchyard), (Disruption::Cuts, Setup::NodeOne)];
    plan.extend([(Disruption::Cuts, Setup::NodeRedis), (Disruption::Cuts, Setup::NodeStreams)]);
    for drain in ["0", if smoke { "1s" } else { "5s" }] {
        plan.push((Disruption::Restart, Setup::Switchyard { drain: Some(drain) }));
    }
    plan.extend([(Disruption::Restart, Setup::NodeRedis), (Disruption::Restart, Setup::NodeStreams)]);
    plan.extend([
        (Disruption::Crash, switchyard),
        (Disruption::Crash, Setup::NodeRedis),
        (Disruption::Crash, Setup::NodeStreams),
    ]);

    if redis.is_none() {
        eprintln!("drops: no Redis, only the one-node row runs");
    }
    let mut outcomes = Vec::new();
    for (n, (disruption, setup)) in plan.into_iter().enumerate() {
        if redis.is_none() && setup != Setup::NodeOne {
            continue;
        }
        if smoke && setup.kind() == Kind::Node && (setup == Setup::NodeStreams || disruption == Disruption::Crash) {
            continue;
        }
        let count = disruption.instances(setup);
        if let Some(only) = &sizes.only
            && !disruption.name().contains(only.as_str())
            && !setup.name(count).contains(only.as_str())
        {
            continue;
        }
        let env = setup.env(redis, format!("bench-drops-{}-{n}-", std::process::id()))?;
        let servers = (0..count).map(|_| Server::start_with(setup.kind(), &env)).collect::<anyhow::Result<Vec<_>>>()?;
        outcomes.push(run(setup, servers, env, sizes, disruption).await?);
    }
    Ok(outcomes)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Disruption {
    /// `cut_share` of the clients cut off every second.
    Cuts,
    /// Three instances restarted in turn (a deploy): each stopped with SIGTERM and replaced;
    /// no other cut.
    Restart,
    /// The first server killed with SIGKILL halfway (a crash); no other cut.
    Crash,
}

impl Disruption {
    fn name(self) -> &'static str {
        match self {
            Disruption::Cuts => "cuts",
            Disruption::Restart => "rolling restart",
            Disruption::Crash => "crash",
        }
    }

    /// How many instances the row starts with.
    fn instances(self, setup: Setup) -> usize {
        match (self, setup) {
            (_, Setup::NodeOne) => 1,
            (Disruption::Restart, _) => 3,
            _ => 2,
        }
    }
}

/// An instance as the load balancer sees it.
struct Instance {
    addr: String,
    /// In rotation: new connections may go to it.
    up: bool,
}

/// What every client task shares with the run.
struct Shared {
    /// Every instance of the row, in the order started (a replacement after the first ones);
    /// an index here names an instance (a process) for good.
    instances: RwLock<Vec<Instance>>,
    kind: Kind,
    /// Clients subscribed (at least once).
    ready: AtomicUsize,
    recovered: AtomicUsize,
    /// Ticks received by all clients.
    received: AtomicUsize,
    /// Clients between a cut and their next connection.
    away: AtomicUsize,
    /// Open connections to each instance (as many as the row may start).
    live: Vec<AtomicUsize>,
}

impl Shared {
    /// Where a load balancer sends a client's `nth` connection: to an instance in rotation other
    /// than `from` (the one it left, or failed to reach) if there is one, spread by `nth`.
    fn pick(&self, nth: usize, from: Option<usize>) -> Option<(usize, String)> {
        let instances = self.instances.read().expect("instances lock");
        let up: Vec<usize> = (0..instances.len()).filter(|&s| instances[s].up).collect();
        let others: Vec<usize> = up.iter().copied().filter(|&s| Some(s) != from).collect();
        let choice = if others.is_empty() { up } else { others };
        let server = *choice.get(nth % choice.len().max(1))?;
        Some((server, instances[server].addr.clone()))
    }

    fn addr(&self, server: usize) -> String {
        self.instances.read().expect("instances lock")[server].addr.clone()
    }

    /// Takes an instance out of rotation (before it is stopped).
    fn take_out(&self, server: usize) {
        self.instances.write().expect("instances lock")[server].up = false;
    }
}

/// What one client saw.
struct Record {
    /// Every `n` received, in arrival order.
    received: Vec<u64>,
    /// Each connection after the first: the instance it reached (an index of `instances`) and
    /// when its namespace connect was answered.
    reconnects: Vec<(usize, Instant)>,
}

async fn run(
    setup: Setup,
    mut servers: Vec<Server>,
    env: Vec<(&'static str, String)>,
    sizes: &DropSizes,
    disruption: Disruption,
) -> anyhow::Result<Outcome> {
    let count = servers.len();
    let (scenario, name) = (disruption.name(), setup.name(count));
    eprintln!(
        "drops: {scenario}, {name}: {} clients, {} publications/s for {} s",
        sizes.clients, sizes.rate, sizes.seconds
    );
    // A restart starts a replacement for each instance.
    let most = if disruption == Disruption::Restart { 2 * count } else { count };
    let shared = Arc::new(Shared {
        instances: RwLock::new(servers.iter().map(|s| Instance { addr: s.addr.clone(), up: true }).collect()),
        kind: setup.kind(),
        ready: AtomicUsize::new(0),
        recovered: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        away: AtomicUsize::new(0),
        live: (0..most).map(|_| AtomicUsize::new(0)).collect(),
    });
    // A user per client: one user's connections are capped (`PER_USER_CAP` by default).
    let users: Vec<String> = (0..sizes.clients).map(|i| format!("dropper-{i}")).collect();
    anyhow::ensure!(users.iter().collect::<HashSet<_>>().len() == users.len(), "drops: two clients share a user");
    let (stop, stopped) = watch::channel(false);
    let cuts: Vec<Arc<Notify>> = (0..sizes.clients).map(|_| Arc::new(Notify::new())).collect();
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| tokio::spawn(client(i, token(user), shared.clone(), cuts[i].clone(), stopped.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Ordering::Relaxed) < sizes.clients {
        anyhow::ensure!(Instant::now() < deadline, "{scenario}, {name}: clients did not all subscribe within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The stream, through the last instance (the crash stops the first); a restart moves it to
    // an instance in rotation before stopping the one it goes through, and keeps it going until
    // 2 s after the last replacement listens, should the restart outlast `seconds`.
    let target = Arc::new(tokio::sync::Mutex::new(shared.addr(count - 1)));
    let restarting = Arc::new(AtomicBool::new(disruption == Disruption::Restart));
    let publisher = tokio::spawn(publish(target.clone(), restarting.clone(), sizes.rate, sizes.seconds));
    let mut cut_count = 0u64;
    let started = Instant::now();
    // The instances stopped, and the restart's length.
    let mut stops = Vec::new();
    let mut restart_s = None;
    match disruption {
        Disruption::Cuts => {
            for second in 1..=sizes.seconds {
                tokio::time::sleep_until(started + Duration::from_secs(second)).await;
                let n = ((sizes.clients as f64) * sizes.cut_share).round() as usize;
                for k in 0..n {
                    // A different slice of the clients each second.
                    cuts[(second as usize * n + k) % sizes.clients].notify_one();
                }
                cut_count += n as u64;
            }
        }
        Disruption::Crash => {
            tokio::time::sleep_until(started + Duration::from_secs(sizes.seconds / 2)).await;
            eprintln!("drops: {scenario}, {name}: SIGKILL to the first instance");
            // Its health check fails: the load balancer sends no one there any more.
            shared.take_out(0);
            servers[0].signal(libc::SIGKILL);
            stops.push(0);
        }
        Disruption::Restart => {
            tokio::time::sleep_until(started + Duration::from_secs_f64(sizes.seconds as f64 / 5.0)).await;
            let first = Instant::now();
            for slot in 0..count {
                // The slot's instance is its first one: a replacement is started after them all.
                let step = Instant::now();
                shared.take_out(slot);
                {
                    // Waits for a publication in flight to it.
                    let mut to = target.lock().await;
                    if *to == shared.addr(slot) {
                        let (_, addr) = shared.pick(0, Some(slot)).context("no instance left in rotation")?;
                        *to = addr;
                    }
                }
                servers[slot].signal(libc::SIGTERM);
                stops.push(slot);
                let deadline = Instant::now() + Duration::from_secs(60);
                while !servers[slot].exited() {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "{scenario}, {name}: instance {slot} still running 60 s after SIGTERM"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let exited = step.elapsed();
                let (kind, env) = (setup.kind(), env.clone());
                let server = tokio::task::spawn_blocking(move || Server::start_with(kind, &env)).await??;
                shared
                    .instances
                    .write()
                    .expect("instances lock")
                    .push(Instance { addr: server.addr.clone(), up: true });
                servers.push(server);
                eprintln!(
                    "drops: {scenario}, {name}: instance {slot} exited {:.2} s after SIGTERM, its replacement listening after {:.2} s",
                    exited.as_secs_f64(),
                    step.elapsed().as_secs_f64()
                );
            }
            restart_s = Some(first.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(2)).await;
            restarting.store(false, Ordering::Relaxed);
        }
    }
    let published = publisher.await.context("publisher")??;

    // Every client has everything, or none is reconnecting and nothing arrived for 2 s. After a
    // stop, the stopped instances have also exited (a draining one closes its last connections
    // after the stream may have ended), no client is still on one and every client is connected
    // again: every reconnect is counted.
    let everything = sizes.clients * published as usize;
    let (mut last, mut quiet_since) = (usize::MAX, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = shared.received.load(Ordering::Relaxed);
        if received != last {
            (last, quiet_since) = (received, Instant::now());
        }
        let back = shared.away.load(Ordering::Relaxed) == 0;
        let quiet = quiet_since.elapsed() > Duration::from_secs(2);
        let off = stops.iter().all(|&s| servers[s].exited() && shared.live[s].load(Ordering::Relaxed) == 0);
        let done = match disruption {
            Disruption::Cuts => received >= everything || (back && quiet),
            Disruption::Restart | Disruption::Crash => off && back && (received >= everything || quiet),
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true)?;
    let mut records = Vec::with_capacity(tasks.len());
    for task in tasks {
        records.push(task.await.context("client task")?);
    }
    drop(servers);
    let started_on = |i: usize| i % count;
    if std::env::var_os("DROPS_DEBUG").is_some() {
        // Each client short of a publication: where it started, what it missed first, where and
        // when (ms after the stream began) each of its reconnects completed.
        for (i, r) in records.iter().enumerate() {
            let got: HashSet<u64> = r.received.iter().copied().collect();
            if let Some(missing) = (0..published).find(|n| !got.contains(n)) {
                let reconnects: Vec<(usize, u128)> =
                    r.reconnects.iter().map(|&(s, t)| (s, t.saturating_duration_since(started).as_millis())).collect();
                eprintln!(
                    "drops: client {i} (user dropper-{i}, first on instance {}): {} of {published}, first missing {missing}, reconnects {reconnects:?}",
                    started_on(i),
                    got.len()
                );
            }
        }
        let mut per_instance = vec![0usize; most];
        for r in &records {
            for &(server, _) in &r.reconnects {
                per_instance[server] += 1;
            }
        }
        eprintln!("drops: reconnects per instance {per_instance:?}");
        let stayed: Vec<usize> = (0..records.len())
            .filter(|&i| stops.contains(&started_on(i)) && records[i].reconnects.is_empty())
            .collect();
        eprintln!("drops: clients first on a stopped instance that never reconnected: {stayed:?}");
    }
    let mut outcome =
        score(scenario, name, &records, published, cut_count, shared.recovered.load(Ordering::Relaxed) as u64);
    if disruption != Disruption::Cuts {
        // Every reconnect follows a stop and reaches an instance in rotation: a survivor.
        let (count, peak, span) = reconnect_peak(&records, most);
        outcome.reconnects = Some(count);
        outcome.reconnect_peak_per_s = Some(peak);
        outcome.reconnect_span_s = Some(span);
        outcome.restart_s = restart_s;
    }
    Ok(outcome)
}

/// The reconnects the instances (`0..instances`) completed: how many, the most any one of them
/// completed within one second (a window sliding from each reconnect), and seconds from the
/// first to the last.
fn reconnect_peak(records: &[Record], instances: usize) -> (u64, u64, f64) {
    let (mut count, mut peak) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for server in 0..instances {
        let mut times: Vec<Instant> =
            records.iter().flat_map(|r| r.reconnects.iter().filter(|(s, _)| *s == server).map(|&(_, t)| t)).collect();
        times.sort_unstable();
        count += times.len() as u64;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= Duration::from_secs(1) {
                start += 1;
            }
            peak = peak.max((end - start + 1) as u64);
        }
        first = first.into_iter().chain(times.first().copied()).min();
        last = last.into_iter().chain(times.last().copied()).max();
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    (count, peak, span)
}

fn score(
    scenario: &'static str,
    setup: String,
    records: &[Record],
    published: u64,
    cuts: u64,
    recovered: u64,
) -> Outcome {
    let mut shares = Vec::with_capacity(records.len());
    let (mut duplicates, mut out_of_order, mut complete) = (0, 0, 0);
    for record in records {
        let mut seen = vec![false; published as usize];
        let mut last = None;
        let mut good = 0u64;
        for &n in &record.received {
            if n >= published {
                continue;
            }
            if seen[n as usize] {
                duplicates += 1;
                continue;
            }
            seen[n as usize] = true;
            if last.is_some_and(|l| n < l) {
                out_of_order += 1;
            } else {
                good += 1;
            }
            last = Some(n);
        }
        if good == published {
            complete += 1;
        }
        shares.push(100.0 * good as f64 / published.max(1) as f64);
    }
    Outcome {
        scenario,
        setup,
        clients: records.len(),
        published,
        mean_share: shares.iter().sum::<f64>() / shares.len().max(1) as f64,
        min_share: shares.iter().copied().fold(f64::INFINITY, f64::min),
        complete,
        duplicates,
        out_of_order,
        cuts,
        recovered,
        reconnects: None,
        reconnect_peak_per_s: None,
        reconnect_span_s: None,
        restart_s: None,
    }
}

/// Publishes `{n}` to the channel through `target` `rate` times a second for `seconds`, and on
/// while `more` holds; returns how many were accepted (each accepted one is numbered, so `n`
/// runs from 0 without a hole). `target` is held while a publication is in flight.
async fn publish(
    target: Arc<tokio::sync::Mutex<String>>,
    more: Arc<AtomicBool>,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut n = 0;
    while n < rate * seconds || more.load(Ordering::Relaxed) {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate as f64)).await;
        let body = json!({"event": "tick", "to": {"channel": CHANNEL}, "data": {"n": n}});
        let addr = target.lock().await;
        let response =
            http.post(format!("http://{}/api/events", *addr)).header("x-api-key", API_KEY).json(&body).send().await?;
        anyhow::ensure!(response.status().as_u16() == 202, "publish {n} refused: {}", response.status());
        drop(addr);
        n += 1;
    }
    Ok(n)
}

/// How a client comes back: Switchyard's cursor, or Node's session id and offset.
#[derive(Default)]
struct Resume {
    cursor: String,
    pid: Option<String>,
    offset: Option<String>,
}

/// One client: connects where the load balancer sends it (`Shared::pick`: the instance `i`
/// falls on, then one other than the instance it left or failed to reach), subscribes unless
/// its session was recovered, records every `n` it receives and where and when each reconnect
/// completed, and reconnects when cut after the stock client's delay (`reconnectionDelay` 1 s,
/// randomized by ±50%).
async fn client(
    i: usize,
    jwt: String,
    shared: Arc<Shared>,
    cut: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> Record {
    let mut record = Record { received: Vec::new(), reconnects: Vec::new() };
    let mut resume = Resume::default();
    let mut subscribed_once = false;
    let mut away = false;
    let (mut attempt, mut left) = (0, None);
    loop {
        if *stop.borrow() {
            return record;
        }
        let picked = shared.pick(i + attempt, left);
        attempt += 1;
        let Some((server, addr)) = picked else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        left = Some(server);
        let Ok((mut ws, early)) = connect(&addr, &jwt, &shared, &mut resume).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Every connection after the first follows a cut (or a lost server).
        shared.live[server].fetch_add(1, Ordering::Relaxed);
        if away {
            record.reconnects.push((server, Instant::now()));
            shared.away.fetch_sub(1, Ordering::Relaxed);
        }
        for text in early {
            handle(&text, &mut ws, &shared, &mut resume, &mut record.received, &mut subscribed_once).await;
        }
        loop {
            tokio::select! {
                _ = stop.changed() => return record,
                _ = cut.notified() => break,
                message = ws.next() => {
                    let Some(Ok(Message::Text(text))) = message else { break };
                    handle(text.as_str(), &mut ws, &shared, &mut resume, &mut record.received, &mut subscribed_once).await;
                }
            }
        }
        // Cut, or the server went away: drop the connection without a goodbye, come back.
        drop(ws);
        away = true;
        // Away before no longer live: the run never sees a client in neither count.
        shared.away.fetch_add(1, Ordering::Relaxed);
        shared.live[server].fetch_sub(1, Ordering::Relaxed);
        let jitter = (i as u64 * 7_919 + attempt as u64 * 104_729) % 1_000;
        tokio::select! {
            _ = stop.changed() => return record,
            _ = tokio::time::sleep(Duration::from_millis(500 + jitter)) => {}
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// One frame: a ping answered, a subscription acknowledged, a tick recorded (its last argument,
/// the server's cursor or offset, kept), Switchyard's `recovery` report read.
async fn handle(
    text: &str,
    ws: &mut Ws,
    shared: &Shared,
    resume: &mut Resume,
    received: &mut Vec<u64>,
    subscribed_once: &mut bool,
) {
    if text == "2" {
        let _ = ws.send(Message::text("3")).await;
        return;
    }
    if text.starts_with("431") && !*subscribed_once {
        *subscribed_once = true;
        shared.ready.fetch_add(1, Ordering::Relaxed);
    }
    let Some(args) = text.strip_prefix("42").and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok()) else { return };
    match args.first().and_then(Value::as_str) {
        Some("tick") => {
            if let Some(n) = args.get(1).and_then(|d| d["n"].as_u64()) {
                received.push(n);
                shared.received.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(Value::String(last)) = args.last().filter(|_| args.len() > 2) {
                match shared.kind {
                    Kind::Switchyard => resume.cursor = last.clone(),
                    Kind::Node | Kind::NodeWs => resume.offset = Some(last.clone()),
                }
            }
        }
        Some("recovery") => {
            let report = args.get(1).cloned().unwrap_or_default();
            resume.cursor = report["cursor"].as_str().unwrap_or_default().to_owned();
            if report["recovered"] == true {
                shared.recovered.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = ws.send(Message::text(subscribe_frame())).await;
            }
        }
        _ => {}
    }
}

fn subscribe_frame() -> String {
    format!("421[\"subscribe\",{{\"channel\":\"{CHANNEL}\"}}]")
}

/// Opens a connection with the client's resumption data; a Node client learns here whether it
/// was recovered (and subscribes if not); a Switchyard client learns it from `recovery`. Event
/// frames that come before the CONNECT answer (Node sends a recovered session's missed packets
/// first; the stock client buffers them) are returned to be handled after it.
async fn connect(addr: &str, jwt: &str, shared: &Shared, resume: &mut Resume) -> anyhow::Result<(Ws, Vec<String>)> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut ws = tokio::time::timeout(Duration::from_secs(10), handshake(url, stream)).await??;
    let open = next_text(&mut ws).await?;
    anyhow::ensure!(open.starts_with('0'), "expected an Engine.IO open packet");
    let auth = match shared.kind {
        Kind::Switchyard => json!({"token": jwt, "offset": resume.cursor}),
        Kind::Node | Kind::NodeWs => {
            let mut auth = json!({"token": jwt});
            if let (Some(pid), Some(offset)) = (&resume.pid, &resume.offset) {
                auth["pid"] = json!(pid);
                auth["offset"] = json!(offset);
            }
            auth
        }
    };
    ws.send(Message::text(format!("40{auth}"))).await?;
    let mut early = Vec::new();
    loop {
        let frame = next_text(&mut ws).await?;
        if frame.starts_with("42") {
            early.push(frame);
        } else if frame == "2" {
            ws.send(Message::text("3")).await?;
        } else if let Some(body) = frame.strip_prefix("40") {
            if shared.kind == Kind::Node {
                let reply: Value = serde_json::from_str(body).unwrap_or_default();
                let pid = reply["pid"].as_str().map(str::to_owned);
                let recovered = pid.is_some() && pid == resume.pid;
                resume.pid = pid;
                if recovered {
                    shared.recovered.fetch_add(1, Ordering::Relaxed);
                } else {
                    resume.offset = None;
                    ws.send(Message::text(subscribe_frame())).await?;
                }
            }
            return Ok((ws, early));
        } else {
            anyhow::bail!("connection refused: {frame}");
        }
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no frame within 10 s")?
            .context("connection closed")??;
        if let Message::Text(t) = message {
            return Ok(t.to_string());
        }
    }
}

/// The markdown table.
pub fn markdown(outcomes: &[Outcome], sizes: &DropSizes) -> String {
    let mut out = format!(
        "{} clients (a user each), {} publications/s for {} s. Cuts: {}% of the clients cut off every second. \
         Rolling restart: three instances, from a fifth of the stream on each in turn taken out of rotation, \
         sent SIGTERM, waited for and replaced, the next once the replacement listens (the stream runs on to \
         2 s after the last replacement listens); crash: SIGKILL to one of two instances halfway (no other \
         cut in either). A client that loses its instance reconnects to one of the others in rotation. \
         Reconnects: connections completed after each client's first, all at survivors; peak: the most \
         any one instance completed within one second (a sliding window), over every step.\n\n\
         | scenario | setup | publications | received once, in order (mean) | worst client | clients with all | duplicates | out of order | cuts | recovered | reconnects at survivors | peak reconnects/s at a survivor | reconnects spread over | restart took |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        sizes.clients,
        sizes.rate,
        sizes.seconds,
        (sizes.cut_share * 100.0).round()
    );
    let or_dash = |v: Option<u64>| v.map_or("–".to_owned(), |v| v.to_string());
    for o in outcomes {
        out += &format!(
            "| {} | {} | {} | {:.3}% | {:.3}% | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            o.scenario,
            o.setup,
            o.published,
            o.mean_share,
            o.min_share,
            o.complete,
            o.clients,
            o.duplicates,
            o.out_of_order,
            o.cuts,
            o.recovered,
            or_dash(o.reconnects),
            or_dash(o.reconnect_peak_per_s),
            o.reconnect_span_s.map_or("–".to_owned(), |s| format!("{s:.1} s")),
            o.restart_s.map_or("–".to_owned(), |s| format!("{s:.1} s")),
        );
    }
    out
}

/// A bar chart of the mean share per row.
pub fn svg(outcomes: &[Outcome]) -> String {
    let (width, bar, gap, left) = (900.0, 26.0, 14.0, 470.0);
    let height = 40.0 + outcomes.len() as f64 * (bar + gap);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\
         <text x=\"10\" y=\"20\" font-size=\"14\">Publications each client received once, in order (mean %)</text>"
    );
    for (i, o) in outcomes.iter().enumerate() {
        let y = 34.0 + i as f64 * (bar + gap);
        let w = (width - left - 80.0) * o.mean_share / 100.0;
        let color = if o.setup.starts_with("Switchyard") { "#2b7a78" } else { "#c05621" };
        out += &format!(
            "<text x=\"10\" y=\"{:.0}\">{}: {}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\">{:.3}%</text>",
            y + bar * 0.7,
            o.scenario,
            o.setup,
            left + w + 6.0,
            y + bar * 0.7,
            o.mean_share
        );
    }
    out + "</svg>\n"
}
