//! The two servers under test, started the same way: pinned to core 0, port 0, the same JWT
//! secret and API key, a fresh SQLite database for Switchyard.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

pub const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
pub const API_KEY: &str = "bench-api-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
pub enum Kind {
    Switchyard,
    Node,
    /// The Node plain-WebSocket reference (`ws`), run beside `Node` for the plain idle row.
    #[value(skip)]
    NodeWs,
}

pub struct Server {
    pub addr: String,
    child: Child,
    _dir: PathBuf,
}

/// The Switchyard build the next servers start from, when one is chosen (`compare --against`
/// alternates two); otherwise `SWITCHYARD_BIN` or `target/release/switchyard`.
static CHOSEN: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Makes the next Switchyard servers start from `binary` (`None`: the default again).
pub fn choose_binary(binary: Option<PathBuf>) {
    *CHOSEN.lock().unwrap() = binary;
}

fn chosen_binary() -> Option<PathBuf> {
    CHOSEN.lock().unwrap().clone()
}

impl Server {
    pub fn start(kind: Kind) -> anyhow::Result<Server> {
        Server::start_with(kind, &[])
    }

    /// Starts one instance with extra environment (e.g. `REDIS_URL` for two instances; the drop
    /// benchmark's rolling restart passes Switchyard's `SHUTDOWN_DRAIN` this way).
    pub fn start_with(kind: Kind, env: &[(&str, String)]) -> anyhow::Result<Server> {
        Server::spawn(kind, None, env)
    }

    /// Starts a Switchyard instance of another build (the bus benchmark's `--before`).
    pub fn start_switchyard_at(binary: PathBuf, env: &[(&str, String)]) -> anyhow::Result<Server> {
        Server::spawn(Kind::Switchyard, Some(binary), env)
    }

    fn spawn(kind: Kind, binary: Option<PathBuf>, env: &[(&str, String)]) -> anyhow::Result<Server> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let nth = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchyard-bench-{}-{nth}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new("taskset");
        command.arg("-c").arg("0");
        match kind {
            Kind::Switchyard => {
                let binary = binary.or_else(chosen_binary).unwrap_or_else(|| {
                    std::env::var("SWITCHYARD_BIN")
                        .map(PathBuf::from)
                        .unwrap_or_else(|_| root.join("target/release/switchyard"))
                });
                if !binary.exists() {
                    bail!("{} is missing: run `cargo build --release` first", binary.display());
                }
                command
                    .arg(binary)
                    .env("DATABASE_URL", format!("sqlite://{}/bench.db?mode=rwc", dir.display()))
                    .env("LOG_FORMAT", "json")
                    .env("RUST_LOG", "warn,switchyard::startup=info")
                    .env("EVENTS_ALLOW_UNKNOWN", "true")
                    // The Node reference keeps no history: compare the same job.
                    .env("HISTORY_ROOMS", "none");
            }
            Kind::Node | Kind::NodeWs => {
                let script = if kind == Kind::Node { "server.js" } else { "ws-server.js" };
                command.arg("node").arg(root.join("bench/node-reference").join(script));
            }
        }
        let mut child = command
            .current_dir(&dir)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("JWT_SECRET", SECRET)
            .env("API_KEYS", API_KEY)
            .env("APP_ENV", "test")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {kind:?} (needs taskset and node)"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "listening"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        let addr =
            rx.recv_timeout(Duration::from_secs(30)).with_context(|| format!("{kind:?} did not log `listening`"))?;
        Ok(Server { addr, child, _dir: dir })
    }

    /// CPU time the server process has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime and stime are the
        // 12th and 13th, in clock ticks.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 / per_second
    }

    /// File descriptors the server process has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Server {
    /// Sends `signal` to the server (SIGTERM: a deploy's stop; SIGKILL: a crash) without
    /// waiting for it to exit: an instance with `SHUTDOWN_DRAIN` closes its connections over
    /// that long first. Dropping the server reaps it.
    pub fn signal(&mut self, signal: libc::c_int) {
        // SAFETY: kill(2) with a pid this process started and has not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Whether the server process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().map_or(true, |status| status.is_some())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// Pins this process to one core so the generator never competes with the server's core.
pub fn pin_self_to_core(core: usize) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
}

/// Raises this process's open-file limit as far as allowed (the servers, started from here,
/// inherit it); returns the soft limit in force.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let wanted = libc::rlimit { rlim_cur: 1_048_576, rlim_max: 1_048_576 };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
            return wanted.rlim_cur;
        }
        let soft = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}
