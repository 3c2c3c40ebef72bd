//! The bus benchmark: what Redis sends per publication as the number of instances grows, for
//! the bus of one build against another's (`--before`, e.g. the build before interest-based
//! delivery), and how many publications one Redis core numbers.
//!
//! Each run has a private `redis-server`, one real Switchyard instance that numbers and
//! publishes (HTTP publishes, through its Lua script), and `instances - 1` simulated instances:
//! plain Redis subscribers that subscribe as an instance of that build does (the one deliver
//! channel before; the everyone channel and the rooms they have members in after) and count the
//! bytes they read. Users are spread over the instances; each user is in his own room and his
//! organization's. Publications go to one user's room or one organization's, in the given mix.
//! Redis's own counters (`total_net_output_bytes`, `used_cpu_*`) give the egress and the CPU.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::servers::{API_KEY, Server};

const PREFIX: &str = "bench:";

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct BusSizes {
    /// Instance counts (the real one included).
    #[arg(long, value_delimiter = ',', default_value = "10,25,50,100")]
    pub instances: Vec<usize>,
    /// Users, spread evenly over the instances.
    #[arg(long, default_value_t = 5_000)]
    pub users: usize,
    /// Organizations; user i is in organization i mod orgs.
    #[arg(long, default_value_t = 50)]
    pub orgs: usize,
    /// Publications per run.
    #[arg(long, default_value_t = 2_000)]
    pub publications: usize,
    /// Share of publications to a user's room (the rest to an organization's).
    #[arg(long, default_value_t = 0.8)]
    pub user_share: f64,
    /// Payload bytes per publication.
    #[arg(long, default_value_t = 1_024)]
    pub payload: usize,
    /// The build to compare with, subscribed to as that build's instances do (its bus has one
    /// deliver channel every instance reads).
    #[arg(long)]
    pub before: Option<PathBuf>,
    /// Real instances instead of simulated ones: every instance a Switchyard process, every user
    /// a WebSocket client of the instance the simulation gives him (a check of the simulation;
    /// a few instances and users only).
    #[arg(long)]
    pub real: bool,
}

impl BusSizes {
    pub fn smoke() -> BusSizes {
        BusSizes {
            instances: vec![4],
            users: 40,
            orgs: 4,
            publications: 50,
            user_share: 0.8,
            payload: 256,
            before: None,
            real: false,
        }
    }
}

/// How the instances of a build read the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Design {
    /// Every instance reads every publication (`switchyard#deliver`).
    Broadcast,
    /// Each instance reads the rooms it has members in (`switchyard#room:{room}`).
    Interest,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BusRow {
    pub design: Design,
    /// Real instances (not simulated subscribers).
    pub real: bool,
    pub instances: usize,
    pub publications: u64,
    /// Redis bytes out per publication (every instance's subscriber and the replies).
    pub redis_out_per_publication: f64,
    /// Bytes a simulated instance read per publication, on average (not counted for real ones).
    pub instance_in_per_publication: Option<f64>,
    /// Publications one Redis core numbers and sends per second (publications / Redis CPU s).
    pub per_redis_core_second: f64,
}

pub async fn run(sizes: &BusSizes, smoke: bool) -> anyhow::Result<Vec<BusRow>> {
    let mut rows = Vec::new();
    for &instances in &sizes.instances {
        if let Some(before) = &sizes.before {
            rows.push(one(sizes, instances, Design::Broadcast, Some(before.clone())).await?);
        }
        rows.push(one(sizes, instances, Design::Interest, None).await?);
    }
    if smoke {
        for row in &rows {
            anyhow::ensure!(row.publications == sizes.publications as u64, "bus smoke: publications refused: {row:?}");
            anyhow::ensure!(
                row.instance_in_per_publication.is_some_and(|b| b > 0.0),
                "bus smoke: the simulated instances read nothing"
            );
        }
    }
    Ok(rows)
}

async fn one(sizes: &BusSizes, instances: usize, design: Design, binary: Option<PathBuf>) -> anyhow::Result<BusRow> {
    let redis = PrivateRedis::start()?;
    let env = [("REDIS_URL", format!("redis://{}", redis.addr)), ("REDIS_CHANNEL_PREFIX", PREFIX.to_owned())];
    let start = || match &binary {
        Some(binary) => Server::start_switchyard_at(binary.clone(), &env),
        None => Server::start_with(crate::servers::Kind::Switchyard, &env),
    };
    let server = start()?;
    wait_connected(&server).await?;
    // Instance k (after the one that publishes) holds the users i with i mod (instances - 1) == k.
    let simulated = instances.saturating_sub(1).max(1);
    let read = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    let mut fleet = Vec::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for k in 0..simulated {
        if sizes.real {
            let instance = start()?;
            wait_connected(&instance).await?;
            for user in (k..sizes.users).step_by(simulated) {
                let token = member_token(user, user % sizes.orgs);
                let connection =
                    crate::client::Connection::open(&instance.addr, &token, crate::client::next_source()).await?;
                subscribers.push(Subscriber(tokio::spawn({
                    let (stopped, total) = (stopped.clone(), read.clone());
                    async move {
                        connection.receive(stopped, total).await;
                    }
                })));
            }
            fleet.push(instance);
        } else {
            let channels = channels(sizes, design, simulated, k);
            subscribers.push(subscribe(&redis.addr, &channels, read.clone()).await?);
        }
    }
    settle(&read).await;
    let (out_before, cpu_before) = redis_counters(&redis.addr).await?;
    let read_before = read.load(Ordering::Relaxed);

    let published = publish(&server.addr, sizes).await;
    settle(&read).await;
    let (out_after, cpu_after) = redis_counters(&redis.addr).await?;
    let read_bytes = read.load(Ordering::Relaxed) - read_before;
    let _ = stop.send(true);
    drop(subscribers);
    drop(fleet);
    let p = published.max(1) as f64;
    Ok(BusRow {
        design,
        real: sizes.real,
        instances,
        publications: published,
        redis_out_per_publication: (out_after - out_before) as f64 / p,
        instance_in_per_publication: (!sizes.real).then(|| read_bytes as f64 / simulated as f64 / p),
        per_redis_core_second: p / (cpu_after - cpu_before).max(1e-6),
    })
}

/// The channels simulated instance `k` of `simulated` reads in `design`.
fn channels(sizes: &BusSizes, design: Design, simulated: usize, k: usize) -> Vec<String> {
    match design {
        Design::Broadcast => vec![format!("{PREFIX}switchyard#deliver")],
        Design::Interest => {
            let mut rooms = BTreeSet::new();
            for user in (k..sizes.users).step_by(simulated) {
                rooms.insert(format!("user:b{user}"));
                rooms.insert(format!("org:o{}", user % sizes.orgs));
            }
            let mut channels: Vec<String> = rooms.iter().map(|r| format!("{PREFIX}switchyard#room:{r}")).collect();
            channels.push(format!("{PREFIX}switchyard#everyone"));
            channels
        }
    }
}

/// A token of user `b{user}` in organization `o{org}` (his two rooms).
fn member_token(user: usize, org: usize) -> String {
    let claims =
        serde_json::json!({"sub": format!("b{user}"), "organizationId": format!("o{org}"), "exp": 4_102_444_800u64});
    let key = jsonwebtoken::EncodingKey::from_secret(crate::servers::SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).expect("signable")
}

/// Publishes the mix through the real instance, 8 at a time; returns how many were accepted.
async fn publish(addr: &str, sizes: &BusSizes) -> u64 {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/events");
    let next = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    let blob = "x".repeat(sizes.payload);
    let one = || async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= sizes.publications as u64 {
                return;
            }
            // A fixed pseudo-random walk, the same for every build.
            let pick = i.wrapping_mul(2_654_435_761) % 10_000;
            let to = if (pick as f64) < sizes.user_share * 10_000.0 {
                serde_json::json!({"user": format!("b{}", pick as usize % sizes.users)})
            } else {
                serde_json::json!({"org": format!("o{}", pick as usize % sizes.orgs)})
            };
            let body = serde_json::json!({"event": "bench:bus", "to": to, "data": {"i": i, "blob": blob}});
            let sent = http.post(&url).header("x-api-key", API_KEY).json(&body).send().await;
            if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    futures_util::future::join_all((0..8).map(|_| one())).await;
    accepted.load(Ordering::Relaxed)
}

/// A subscriber connection that reads (and counts) until dropped.
struct Subscriber(tokio::task::JoinHandle<()>);

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn subscribe(addr: &str, channels: &[String], read: Arc<AtomicU64>) -> anyhow::Result<Subscriber> {
    let mut stream = TcpStream::connect(addr).await?;
    for chunk in channels.chunks(500) {
        let mut command = vec!["SUBSCRIBE".to_owned()];
        command.extend(chunk.iter().cloned());
        stream.write_all(&resp(&command)).await?;
    }
    Ok(Subscriber(tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                return;
            }
            read.fetch_add(n as u64, Ordering::Relaxed);
        }
    })))
}

/// Waits until the subscribers have read everything (no byte for 300 ms).
async fn settle(read: &AtomicU64) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = read.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

async fn wait_connected(server: &Server) -> anyhow::Result<()> {
    let url = format!("http://{}/readyz", server.addr);
    for _ in 0..200 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the instance never got ready on its Redis")
}

/// Redis's bytes out so far, and its CPU seconds (user + system).
async fn redis_counters(addr: &str) -> anyhow::Result<(u64, f64)> {
    let info = command(addr, &["INFO", "all"]).await?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).with_context(|| name.to_owned())?;
        Ok(line.trim().parse()?)
    };
    Ok((field("total_net_output_bytes")? as u64, field("used_cpu_user")? + field("used_cpu_sys")?))
}

/// One command's bulk-string answer.
async fn command(addr: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    stream.write_all(&resp(&args)).await?;
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        anyhow::ensure!(n > 0, "redis closed the connection");
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((header, body)) = text.split_once("\r\n") {
            let len: usize = header.trim_start_matches('$').parse()?;
            if body.len() >= len {
                return Ok(body[..len].to_owned());
            }
        }
    }
}

fn resp(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// A `redis-server` of the run's own on a free port, killed when dropped.
struct PrivateRedis {
    addr: String,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start() -> anyhow::Result<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new("taskset")
            .args(["-c", "1", "redis-server", "--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting redis-server (the bus benchmark needs one of its own)")?;
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(PrivateRedis { addr, child });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("redis-server did not answer on {addr}")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The table: per instance count, each design's egress and reads per publication.
pub fn markdown(rows: &[BusRow], sizes: &BusSizes) -> String {
    let who = if sizes.real {
        "every instance a real Switchyard process (one publishes), every user a WebSocket client"
    } else {
        "one real instance numbers and publishes, the others are simulated subscribers"
    };
    let mut out = format!(
        "Bus: {} users over the instances, {} organizations, {} publications of {} B ({:.0}% to a user's room, \
         the rest to an organization's); {who}.\n\n\
         | instances | design | Redis bytes out / publication | bytes in / instance / publication | publications / Redis core-second |\n\
         |---|---|---|---|---|\n",
        sizes.users,
        sizes.orgs,
        sizes.publications,
        sizes.payload,
        sizes.user_share * 100.0
    );
    for row in rows {
        let read = row.instance_in_per_publication.map_or("—".to_owned(), |b| format!("{b:.0}"));
        out += &format!(
            "| {}{} | {:?} | {:.0} | {read} | {:.0} |\n",
            row.instances,
            if row.real { " (real)" } else { "" },
            row.design,
            row.redis_out_per_publication,
            row.per_redis_core_second
        );
    }
    out
}
