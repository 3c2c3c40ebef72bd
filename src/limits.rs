//! Per-connection limits, the same for Socket.IO and plain WebSocket: client events per second
//! (a token bucket, burst twice the rate), and the settings-driven caps the connection handlers
//! check (`MAX_CONNECTIONS_PER_USER`, `MAX_PAYLOAD`, `MAX_SUBSCRIPTIONS`).

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `rate` tokens a second, at most `2 × rate` held.
pub struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Bucket { rate, state: Mutex::new((rate * 2.0, Instant::now())) }
    }

    /// Takes one token; false when the bucket is empty (the event is over the limit).
    pub fn take(&self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap();
        let (tokens, refilled) = *state;
        let tokens = (tokens + now.saturating_duration_since(refilled).as_secs_f64() * self.rate).min(self.rate * 2.0);
        if tokens < 1.0 {
            *state = (tokens, now);
            return false;
        }
        *state = (tokens - 1.0, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_twice_the_rate_then_the_rate() {
        let bucket = Bucket::new(5);
        let start = Instant::now();
        assert_eq!((0..12).filter(|_| bucket.take_at(start)).count(), 10, "burst of 2 × rate");
        assert!(!bucket.take_at(start + Duration::from_millis(100)), "half a token after 100 ms");
        assert!(bucket.take_at(start + Duration::from_millis(200)), "one token after 200 ms");
        assert_eq!(
            (0..20).filter(|_| bucket.take_at(start + Duration::from_secs(60))).count(),
            10,
            "never more than the burst"
        );
    }
}
