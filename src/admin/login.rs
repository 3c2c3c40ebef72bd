//! The admin UI's logins, kept from being a way to guess the password or to burn the server's
//! CPU. A bcrypt check takes tens of milliseconds of a core by design; unthrottled, a few dozen
//! sockets guessing keep every core busy and the real operator waits seconds to log in. So:
//!
//! - each client address (read behind trusted proxies, as sessions read it; an IPv6 client by
//!   its /64, which one host commonly holds whole) may try `ADMIN_LOGIN_RATE` times a minute,
//!   as many at once; an attempt over that is refused before any password is looked at,
//!   named (`admin_login_rate`, with when to retry) and counted;
//! - at most one password check runs at a time, server-wide: guessing from many addresses
//!   holds one core at most, and the others keep serving.
//!
//! Attempts without credentials cost nothing and are not counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use socketioxide::extract::SocketRef;
use tokio::sync::Semaphore;

use crate::metrics::{Metrics, Refusal};
use crate::sessions::TrustedProxies;

/// Addresses tracked at most. Past that, full buckets are forgotten first; addresses still
/// beyond it share one bucket (many addresses at once is an attack, and sharing bounds it).
const MAX_TRACKED: usize = 10_000;

/// An attempt over the rate: how long until the address may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany {
    pub retry_in: Duration,
}

pub struct LoginGate {
    /// Attempts per minute per address, and the burst.
    per_minute: u32,
    proxies: TrustedProxies,
    metrics: Arc<Metrics>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    /// One password check at a time.
    checking: Arc<Semaphore>,
}

/// A token bucket: `tokens` attempts left as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LoginGate {
    pub fn new(per_minute: u32, proxies: TrustedProxies, metrics: Arc<Metrics>) -> LoginGate {
        LoginGate {
            per_minute: per_minute.max(1),
            proxies,
            metrics,
            buckets: Mutex::default(),
            checking: Arc::new(Semaphore::new(1)),
        }
    }

    /// Counts an attempt from `socket`'s client address; refused (and counted in the metrics)
    /// when the address is over the rate.
    pub fn attempt(&self, socket: &SocketRef) -> Result<(), TooMany> {
        let parts = socket.req_parts();
        let client = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(peer) => self.proxies.client_address(peer.0.ip(), &parts.headers),
            // Not served by the listener (never the case): one bucket for all such.
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let result = self.take(key(client), Instant::now());
        if result.is_err() {
            self.metrics.refused(Refusal::AdminLogin);
        }
        result
    }

    /// Runs a password check (`check`, blocking: bcrypt) once no other is running, off the
    /// async workers.
    pub async fn check(&self, check: impl FnOnce() -> bool + Send + 'static) -> bool {
        let Ok(permit) = self.checking.clone().acquire_owned().await else { return false };
        // The permit goes with the check: a caller that stops waiting does not free it early.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check()
        })
        .await
        .unwrap_or(false)
    }

    fn take(&self, key: IpAddr, now: Instant) -> Result<(), TooMany> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap();
        let refilled = |b: &Bucket| (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(capacity);
        let key = if buckets.len() < MAX_TRACKED || buckets.contains_key(&key) {
            key
        } else {
            buckets.retain(|_, b| refilled(b) < capacity);
            if buckets.len() < MAX_TRACKED { key } else { IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) }
        };
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now });
        let tokens = refilled(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, at: now };
            return Ok(());
        }
        *bucket = Bucket { tokens, at: now };
        Err(TooMany { retry_in: Duration::from_secs_f64(((1.0 - tokens) / per_second).ceil()) })
    }
}

/// The bucket an address counts in: an IPv4 address alone, an IPv6 one by its /64.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_minute: u32) -> LoginGate {
        LoginGate::new(per_minute, TrustedProxies::default(), Arc::new(Metrics::new()))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_burst_then_one_attempt_per_share_of_the_minute() {
        let gate = gate(6);
        let start = Instant::now();
        for _ in 0..6 {
            assert_eq!(gate.take(ip("192.0.2.1"), start), Ok(()));
        }
        assert_eq!(gate.take(ip("192.0.2.1"), start), Err(TooMany { retry_in: Duration::from_secs(10) }));
        assert_eq!(gate.take(ip("192.0.2.2"), start), Ok(()), "another address has its own");
        let later = start + Duration::from_secs(10);
        assert_eq!(gate.take(ip("192.0.2.1"), later), Ok(()));
        assert!(gate.take(ip("192.0.2.1"), later).is_err());
    }

    #[tokio::test]
    async fn one_password_check_runs_at_a_time() {
        let gate = Arc::new(gate(10));
        let (release_first, first_released) = std::sync::mpsc::channel::<()>();
        let (first_started, started) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.check(move || {
                    first_started.send(()).unwrap();
                    first_released.recv().unwrap();
                    true
                })
                .await
            }
        });
        started.await.unwrap();
        let (second_ran, ran) = tokio::sync::oneshot::channel();
        let second = tokio::spawn({
            let gate = gate.clone();
            async move { gate.check(move || second_ran.send(()).is_ok()).await }
        });
        // While the first holds its turn, the second never starts (however long it is given).
        let early = tokio::time::timeout(Duration::from_secs(2), ran).await;
        assert!(early.is_err(), "a second check ran beside the first");
        release_first.send(()).unwrap();
        assert!(first.await.unwrap());
        second.await.unwrap();
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let gate = gate(1);
        let now = Instant::now();
        assert_eq!(gate.take(key(ip("2001:db8:1:2::1")), now), Ok(()));
        assert!(gate.take(key(ip("2001:db8:1:2:ffff::9")), now).is_err());
        assert_eq!(gate.take(key(ip("2001:db8:1:3::1")), now), Ok(()));
    }

    #[test]
    fn past_the_tracked_addresses_new_ones_share_a_bucket() {
        let gate = gate(1);
        let now = Instant::now();
        for n in 1..=MAX_TRACKED as u32 {
            assert!(gate.take(IpAddr::V4(n.into()), now).is_ok());
        }
        assert!(gate.take(ip("198.51.100.1"), now).is_ok(), "the shared bucket's one attempt");
        assert!(gate.take(ip("198.51.100.2"), now).is_err());
        assert!(gate.buckets.lock().unwrap().len() <= MAX_TRACKED + 1);
    }
}
