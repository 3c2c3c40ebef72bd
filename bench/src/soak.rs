//! The soak: Switchyard under steady connection churn with publications flowing, for a fixed
//! time. Steady subscribers stay connected throughout and must receive every publication;
//! churning connections open, subscribe, stay a moment and close (a tenth of them without a
//! goodbye). The report: the server's RSS and open descriptors at the start (after warm-up),
//! at the peak and at the end (after the churn stopped and the server settled), and the
//! deliveries the steady subscribers lost. Goals: RSS back within 10% of the start, descriptors
//! back to the start, nothing lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Connection, now_us, source_address, token};
use crate::servers::{API_KEY, Kind, Server};

const CHANNEL: &str = "venue:soak";

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct SoakSizes {
    /// Seconds of churn.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Subscribers that stay connected throughout.
    #[arg(long, default_value_t = 200)]
    pub steady: usize,
    /// Connections opened (and closed) per second.
    #[arg(long, default_value_t = 50)]
    pub churn: usize,
    /// Publications per second to the channel everyone subscribes to.
    #[arg(long, default_value_t = 20)]
    pub rate: u64,
}

impl SoakSizes {
    pub fn smoke() -> SoakSizes {
        SoakSizes { seconds: 4, steady: 20, churn: 20, rate: 10 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub rss_start_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    pub fds_start: usize,
    pub fds_peak: usize,
    pub fds_end: usize,
    pub connections_churned: u64,
    pub published: u64,
    pub lost: i64,
}

impl SoakReport {
    pub fn markdown(&self, sizes: &SoakSizes) -> String {
        format!(
            "Soak: {} s, {} steady subscribers, {} connections opened and closed per second, {} publications/s.\n\n\
             | | start | peak | end |\n|---|---:|---:|---:|\n\
             | RSS (KiB) | {} | {} | {} ({:+.1}%) |\n| open descriptors | {} | {} | {} |\n\n\
             {} connections churned, {} publications, {} deliveries lost by the steady subscribers.\n",
            sizes.seconds,
            sizes.steady,
            sizes.churn,
            sizes.rate,
            self.rss_start_kib,
            self.rss_peak_kib,
            self.rss_end_kib,
            100.0 * (self.rss_end_kib as f64 - self.rss_start_kib as f64) / self.rss_start_kib.max(1) as f64,
            self.fds_start,
            self.fds_peak,
            self.fds_end,
            self.connections_churned,
            self.published,
            self.lost
        )
    }
}

pub async fn run(sizes: &SoakSizes) -> anyhow::Result<SoakReport> {
    let server = Server::start(Kind::Switchyard)?;
    let addr = server.addr.clone();
    let (stop, stopped) = watch::channel(false);
    let received = Arc::new(AtomicU64::new(0));
    let mut steady = Vec::with_capacity(sizes.steady);
    for i in 0..sizes.steady {
        let mut connection = Connection::open(&addr, &token(&format!("steady-{i}")), source_address(i, 20_000)).await?;
        connection.subscribe(CHANNEL).await?;
        steady.push(tokio::spawn(connection.receive(stopped.clone(), received.clone())));
    }
    // Warm-up: one round of churn, then the baseline.
    churn_round(&addr, sizes.churn, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_start, fds_start) = (server.rss_kib(), server.open_fds());
    let (mut rss_peak, mut fds_peak) = (rss_start, fds_start);

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/events");
    let start = Instant::now();
    let mut published = 0u64;
    let mut churned = 0u64;
    let mut second = 0u64;
    while second < sizes.seconds {
        let round = tokio::spawn(churn_round_owned(addr.clone(), sizes.churn, second + 1));
        for k in 0..sizes.rate {
            tokio::time::sleep_until(
                start + Duration::from_secs(second) + Duration::from_secs_f64(k as f64 / sizes.rate as f64),
            )
            .await;
            let body = serde_json::json!({"event": "soak", "to": {"channel": CHANNEL}, "data": {"n": published, "t": now_us()}});
            let response = http.post(&url).header("x-api-key", API_KEY).json(&body).send().await?;
            anyhow::ensure!(response.status().as_u16() == 202, "publish refused: {}", response.status());
            published += 1;
        }
        churned += round.await? as u64;
        rss_peak = rss_peak.max(server.rss_kib());
        fds_peak = fds_peak.max(server.open_fds());
        second += 1;
    }
    // The publisher's keep-alive connection is the generator's, not the server's: close it
    // before the end is measured. Then everything delivered (or 10 s), and a settle.
    drop(http);
    let expected = published * sizes.steady as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_end, fds_end) = (server.rss_kib(), server.open_fds());
    stop.send(true)?;
    for task in steady {
        task.await?;
    }
    Ok(SoakReport {
        rss_start_kib: rss_start,
        rss_peak_kib: rss_peak,
        rss_end_kib: rss_end,
        fds_start,
        fds_peak,
        fds_end,
        connections_churned: churned,
        published,
        lost: expected as i64 - received.load(Ordering::Relaxed) as i64,
    })
}

async fn churn_round_owned(addr: String, n: usize, round: u64) -> usize {
    churn_round(&addr, n, round).await
}

/// Opens `n` connections, subscribes each, holds them half a second, closes them (every tenth
/// by dropping its TCP connection without a goodbye). Returns how many opened.
async fn churn_round(addr: &str, n: usize, round: u64) -> usize {
    let opened = futures_util::future::join_all((0..n).map(|k| async move {
        let i = round as usize * n + k;
        let source = source_address(100_000 + i % 20_000, 20_000);
        let mut connection = Connection::open(addr, &token(&format!("churn-{i}")), source).await.ok()?;
        connection.subscribe(CHANNEL).await.ok()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if k % 10 == 0 {
            connection.abandon();
        } else {
            connection.close().await;
        }
        Some(())
    }))
    .await;
    opened.into_iter().flatten().count()
}
