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
//! - rolling restart: SIGTERM to one of two instances halfway, no other cut. Switchyard with
//!   `SHUTDOWN_DRAIN=0` and with `SHUTDOWN_DRAIN=5s`; Node with either adapter (the reference
//!   closes its sockets with `io.close()` at SIGTERM, which persists recoverable sessions).
//! - crash: SIGKILL to one of two instances halfway, no other cut; the same three two-instance
//!   setups as the cuts.
//!
//! For the restart and the crash, every client knows which server each of its connections
//! reached and when it completed: the peak of reconnects per second the surviving instance saw.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
        DropSizes {
            clients: PER_USER_CAP + 10,
            seconds: 3,
            rate: 10,
            cut_share: 0.10,
            only: None,
        }
    }
}

/// What one setup delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `cuts`, `rolling restart` or `crash`.
    pub scenario: &'static str,
    pub setup: &'static str,
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
    /// Rolling restart and crash: connections completed at the surviving instances after the
    /// first (none for the cuts).
    pub reconnects: Option<u64>,
    /// The most of those any one survivor completed within one second (a sliding window).
    pub reconnect_peak_per_s: Option<u64>,
    /// Seconds from the first of those reconnects to the last.
    pub reconnect_span_s: Option<f64>,
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
    fn name(self) -> &'static str {
        match self {
            Setup::Switchyard { drain: None } => "Switchyard, 2 instances + Redis",
            Setup::Switchyard { drain: Some("0") } => "Switchyard, 2 instances + Redis, SHUTDOWN_DRAIN=0",
            Setup::Switchyard { drain: Some("5s") } => "Switchyard, 2 instances + Redis, SHUTDOWN_DRAIN=5s",
            Setup::Switchyard { drain: Some(_) } => "Switchyard, 2 instances + Redis, SHUTDOWN_DRAIN set",
            Setup::NodeOne => "Node 4.8, 1 node, connectionStateRecovery",
            Setup::NodeRedis => "Node 4.8, 2 nodes + redis-adapter",
            Setup::NodeStreams => "Node 4.8, 2 nodes + redis-streams-adapter",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Setup::Switchyard { .. } => Kind::Switchyard,
            _ => Kind::Node,
        }
    }

    /// Starts the row's servers; `prefix` keeps this row's Redis channels and keys apart from
    /// every other run's (tests and benchmarks share one Redis).
    fn start(self, redis: Option<&str>, prefix: String) -> anyhow::Result<Vec<Server>> {
        let redis = || redis.map(str::to_owned).context("a two-instance setup without Redis");
        let (count, env): (usize, Vec<(&str, String)>) = match self {
            Setup::Switchyard { drain } => {
                let mut env = vec![("REDIS_URL", redis()?), ("REDIS_CHANNEL_PREFIX", prefix)];
                env.extend(drain.map(|d| ("SHUTDOWN_DRAIN", d.to_owned())));
                (2, env)
            }
            Setup::NodeOne => (1, vec![("RECOVERY", "1".into())]),
            Setup::NodeRedis | Setup::NodeStreams => {
                let adapter = if self == Setup::NodeStreams { "streams" } else { "redis" };
                let env = vec![
                    ("REDIS_URL", redis()?),
                    ("REDIS_CHANNEL_PREFIX", prefix),
                    ("RECOVERY", "1".into()),
                    ("ADAPTER", adapter.into()),
                ];
                (2, env)
            }
        };
        (0..count).map(|_| Server::start_with(self.kind(), &env)).collect()
    }
}

/// Runs every row (those `sizes.only` picks); without `redis` only the one-node row runs, and
/// `smoke` leaves out the rows whose code path another row already takes (the Node crash rows
/// and the streams adapter: the same client, the same stop as the Node rolling restart).
pub async fn run_all(sizes: &DropSizes, redis: Option<&str>, smoke: bool) -> anyhow::Result<Vec<Outcome>> {
    let switchyard = Setup::Switchyard { drain: None };
    let mut plan = vec![(Disruption::Cuts, switchyard), (Disruption::Cuts, Setup::NodeOne)];
    plan.extend([(Disruption::Cuts, Setup::NodeRedis), (Disruption::Cuts, Setup::NodeStreams)]);
    for drain in ["0", "5s"] {
        plan.push((Disruption::Restart, Setup::Switchyard { drain: Some(drain) }));
    }
    plan.extend([(Disruption::Restart, Setup::NodeRedis), (Disruption::Restart, Setup::NodeStreams)]);
    plan.extend([(Disruption::Crash, switchyard), (Disruption::Crash, Setup::NodeRedis), (Disruption::Crash, Setup::NodeStreams)]);

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
        if let Some(only) = &sizes.only
            && !disruption.name().contains(only.as_str())
            && !setup.name().contains(only.as_str())
        {
            continue;
        }
        let prefix = format!("bench-drops-{}-{n}-", std::process::id());
        let servers = setup.start(redis, prefix)?;
        outcomes.push(run(setup, servers, sizes, disruption).await?);
    }
    Ok(outcomes)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Disruption {
    /// `cut_share` of the clients cut off every second.
    Cuts,
    /// The first server stopped with SIGTERM halfway (a deploy); no other cut.
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
}

/// What every client task shares with the run.
struct Shared {
    addrs: Vec<String>,
    kind: Kind,
    /// Clients subscribed (at least once).
    ready: AtomicUsize,
    recovered: AtomicUsize,
    /// Ticks received by all clients.
    received: AtomicUsize,
    /// Clients between a cut and their next connection.
    away: AtomicUsize,
    /// Open connections to each server.
    live: Vec<AtomicUsize>,
}

/// What one client saw.
struct Record {
    /// Every `n` received, in arrival order.
    received: Vec<u64>,
    /// Each connection after the first: the server it reached (an index of `addrs`) and when
    /// its namespace connect was answered.
    reconnects: Vec<(usize, Instant)>,
}

async fn run(setup: Setup, mut servers: Vec<Server>, sizes: &DropSizes, disruption: Disruption) -> anyhow::Result<Outcome> {
    let (scenario, name) = (disruption.name(), setup.name());
    eprintln!("drops: {scenario}, {name}: {} clients, {} publications/s for {} s", sizes.clients, sizes.rate, sizes.seconds);
    let shared = Arc::new(Shared {
        addrs: servers.iter().map(|s| s.addr.clone()).collect(),
        kind: setup.kind(),
        ready: AtomicUsize::new(0),
        recovered: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        away: AtomicUsize::new(0),
        live: servers.iter().map(|_| AtomicUsize::new(0)).collect(),
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

    // The stream, through the last server (the first may be stopped).
    let publisher = tokio::spawn(publish(shared.addrs.last().cloned().expect("a server"), sizes.rate, sizes.seconds));
    let mut cut_count = 0u64;
    let started = Instant::now();
    let mut second = 0u64;
    while second < sizes.seconds {
        second += 1;
        tokio::time::sleep_until(started + Duration::from_secs(second)).await;
        match disruption {
            Disruption::Cuts => {
                let n = ((sizes.clients as f64) * sizes.cut_share).round() as usize;
                for k in 0..n {
                    // A different slice of the clients each second.
                    cuts[(second as usize * n + k) % sizes.clients].notify_one();
                }
                cut_count += n as u64;
            }
            Disruption::Restart | Disruption::Crash if second == sizes.seconds / 2 => {
                let (signal, what) = match disruption {
                    Disruption::Crash => (libc::SIGKILL, "SIGKILL"),
                    _ => (libc::SIGTERM, "SIGTERM"),
                };
                eprintln!("drops: {scenario}, {name}: {what} to the first instance");
                // Not waited for: a draining instance takes its time to exit.
                servers[0].signal(signal);
            }
            Disruption::Restart | Disruption::Crash => {}
        }
    }
    let published = publisher.await.context("publisher")??;

    // Every client has everything, or none is reconnecting and nothing arrived for 2 s. After a
    // stop, the stopped instance has also exited (a draining one closes its last connections
    // after the stream may have ended), no client is still on it and every client is connected
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
        let done = match disruption {
            Disruption::Cuts => received >= everything || (back && quiet),
            Disruption::Restart | Disruption::Crash => {
                let off = servers[0].exited() && shared.live[0].load(Ordering::Relaxed) == 0;
                off && back && (received >= everything || quiet)
            }
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
    if std::env::var_os("DROPS_DEBUG").is_some() {
        // Each client short of a publication: where it started, what it missed first, where and
        // when (ms after the stream began) each of its reconnects completed.
        for (i, r) in records.iter().enumerate() {
            let got: HashSet<u64> = r.received.iter().copied().collect();
            if let Some(missing) = (0..published).find(|n| !got.contains(n)) {
                let reconnects: Vec<_> = r.reconnects.iter().map(|&(s, t)| (s, t.saturating_duration_since(started).as_millis())).collect();
                eprintln!(
                    "drops: client {i} (user dropper-{i}, first on server {}): {} of {published}, first missing {missing}, reconnects {reconnects:?}",
                    i % shared.addrs.len(),
                    got.len()
                );
            }
        }
        let mut per_server = vec![0usize; shared.addrs.len()];
        for r in &records {
            for &(server, _) in &r.reconnects {
                per_server[server] += 1;
            }
        }
        eprintln!("drops: reconnects per server {per_server:?}");
        if disruption != Disruption::Cuts {
            let stayed: Vec<usize> = (0..records.len()).step_by(shared.addrs.len()).filter(|&i| records[i].reconnects.is_empty()).collect();
            eprintln!("drops: clients first on the stopped instance that never reconnected: {stayed:?}");
        }
    }
    let mut outcome = score(scenario, name, &records, published, cut_count, shared.recovered.load(Ordering::Relaxed) as u64);
    if disruption != Disruption::Cuts {
        // The survivors: every instance but the first.
        let survivors: Vec<usize> = (1..shared.addrs.len()).collect();
        let (count, peak, span) = reconnect_peak(&records, &survivors);
        outcome.reconnects = Some(count);
        outcome.reconnect_peak_per_s = Some(peak);
        outcome.reconnect_span_s = Some(span);
    }
    Ok(outcome)
}

/// The reconnects the `survivors` completed: how many, the most any one of them completed within
/// one second (a window sliding from each reconnect), and seconds from the first to the last.
fn reconnect_peak(records: &[Record], survivors: &[usize]) -> (u64, u64, f64) {
    let (mut count, mut peak) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for &server in survivors {
        let mut times: Vec<Instant> = records
            .iter()
            .flat_map(|r| r.reconnects.iter().filter(|(s, _)| *s == server).map(|&(_, t)| t))
            .collect();
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

fn score(scenario: &'static str, setup: &'static str, records: &[Record], published: u64, cuts: u64, recovered: u64) -> Outcome {
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
    }
}

/// Publishes `{n}` to the channel `rate` times a second for `seconds`; returns how many were
/// accepted (each accepted one is numbered, so `n` runs from 0 without a hole).
async fn publish(addr: String, rate: u64, seconds: u64) -> anyhow::Result<u64> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/events");
    let start = Instant::now();
    let total = rate * seconds;
    for n in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate as f64)).await;
        let body = json!({"event": "tick", "to": {"channel": CHANNEL}, "data": {"n": n}});
        let response = http.post(&url).header("x-api-key", API_KEY).json(&body).send().await?;
        anyhow::ensure!(response.status().as_u16() == 202, "publish {n} refused: {}", response.status());
    }
    Ok(total)
}

/// How a client comes back: Switchyard's cursor, or Node's session id and offset.
#[derive(Default)]
struct Resume {
    cursor: String,
    pid: Option<String>,
    offset: Option<String>,
}

/// One client: connects (to its server, else the next that answers), subscribes unless its
/// session was recovered, records every `n` it receives and where and when each reconnect
/// completed, and reconnects when cut after the stock client's delay (`reconnectionDelay` 1 s,
/// randomized by ±50%).
async fn client(i: usize, jwt: String, shared: Arc<Shared>, cut: Arc<Notify>, mut stop: watch::Receiver<bool>) -> Record {
    let mut record = Record { received: Vec::new(), reconnects: Vec::new() };
    let mut resume = Resume::default();
    let mut subscribed_once = false;
    let mut away = false;
    let mut attempt = i;
    loop {
        if *stop.borrow() {
            return record;
        }
        let server = attempt % shared.addrs.len();
        attempt += 1;
        let Ok((mut ws, early)) = connect(&shared.addrs[server], &jwt, &shared, &mut resume).await else {
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
async fn handle(text: &str, ws: &mut Ws, shared: &Shared, resume: &mut Resume, received: &mut Vec<u64>, subscribed_once: &mut bool) {
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
         Rolling restart: SIGTERM to one of two instances halfway; crash: SIGKILL to one of two halfway (no \
         other cut in either). Reconnects: connections completed at the surviving instance after each \
         client's first; peak: the most of them within one second (a sliding window).\n\n\
         | scenario | setup | publications received once, in order (mean) | worst client | clients with all | duplicates | out of order | cuts | recovered | reconnects at the survivor | peak reconnects/s | reconnects spread over |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        sizes.clients,
        sizes.rate,
        sizes.seconds,
        (sizes.cut_share * 100.0).round()
    );
    let or_dash = |v: Option<u64>| v.map_or("–".to_owned(), |v| v.to_string());
    for o in outcomes {
        out += &format!(
            "| {} | {} | {:.3}% | {:.3}% | {} / {} | {} | {} | {} | {} | {} | {} | {} |\n",
            o.scenario,
            o.setup,
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
