//! Token lifetimes: each connection is bound to its token's `exp`. One timer serves every
//! connection (no task per connection): it hands the wiring each connection whose token is about
//! to expire (`TOKEN_EXPIRY_NOTICE` before) or has expired, and the wiring warns or disconnects
//! it. A refreshed token replaces the connection's deadlines.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

const HOUR: Duration = Duration::from_secs(3600);

/// A connection, as the timer knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conn {
    /// A Socket.IO socket, by id.
    Socket(String),
    /// A plain WebSocket connection, by id.
    Plain(String),
}

/// What came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// The token expires at `.1` (Unix seconds): warn.
    Expiring(Conn, i64),
    /// The token expired at `.1`: end the connection.
    Expired(Conn, i64),
}

/// The deadlines of every connection.
pub struct Lifetimes {
    /// How long before expiry to warn (`None`: no warning).
    notice: Option<Duration>,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Each connection's token expiry (Unix seconds).
    expiry: HashMap<Conn, i64>,
    /// (when, is the expiry itself, connection): ordered by when.
    timeline: BTreeSet<(i64, bool, Conn)>,
}

impl Lifetimes {
    pub fn new(notice: Option<Duration>) -> Self {
        Lifetimes { notice, state: Mutex::default(), wake: Notify::new() }
    }

    /// Binds `conn` to a token that expires at `expires_at` (Unix seconds), replacing any
    /// earlier binding.
    pub fn bind(&self, conn: Conn, expires_at: i64) {
        let mut state = self.state.lock().unwrap();
        state.remove(&conn, self.notice);
        let notice = self.notice.map(|n| expires_at - n.as_secs() as i64);
        if let Some(at) = notice {
            state.timeline.insert((at, false, conn.clone()));
        }
        state.timeline.insert((expires_at, true, conn.clone()));
        state.expiry.insert(conn, expires_at);
        drop(state);
        self.wake.notify_one();
    }

    /// Forgets a closed connection.
    pub fn forget(&self, conn: &Conn) {
        self.state.lock().unwrap().remove(conn, self.notice);
    }

    /// Hands what comes due to `due`, until `shutdown`.
    pub async fn run(&self, due: mpsc::Sender<Due>, shutdown: CancellationToken) {
        loop {
            let now = chrono::Utc::now().timestamp();
            let (ready, next) = self.take_due(now);
            for item in ready {
                if due.send(item).await.is_err() {
                    return;
                }
            }
            // At most an hour (a development identity never expires).
            let wait = next.map_or(HOUR, |at| Duration::from_secs((at - now).clamp(0, 3600) as u64));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Removes and returns what is due at `now` (Unix seconds), and when the next is.
    fn take_due(&self, now: i64) -> (Vec<Due>, Option<i64>) {
        let mut state = self.state.lock().unwrap();
        let mut ready = Vec::new();
        while let Some((at, expiry, conn)) = state.timeline.first().cloned() {
            if at > now {
                return (ready, Some(at));
            }
            state.timeline.pop_first();
            let expires_at = state.expiry.get(&conn).copied().unwrap_or(at);
            if expiry {
                state.expiry.remove(&conn);
                ready.push(Due::Expired(conn, expires_at));
            } else {
                ready.push(Due::Expiring(conn, expires_at));
            }
        }
        (ready, None)
    }
}

impl State {
    fn remove(&mut self, conn: &Conn, notice: Option<Duration>) {
        if let Some(expires_at) = self.expiry.remove(conn) {
            self.timeline.remove(&(expires_at, true, conn.clone()));
            if let Some(n) = notice {
                self.timeline.remove(&(expires_at - n.as_secs() as i64, false, conn.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_due_in_order_and_a_refresh_replaces_them() {
        let lifetimes = Lifetimes::new(Some(Duration::from_secs(10)));
        let a = Conn::Socket("a".into());
        let b = Conn::Plain("b".into());
        lifetimes.bind(a.clone(), 100);
        lifetimes.bind(b.clone(), 50);
        assert_eq!(lifetimes.take_due(39), (vec![], Some(40)));
        assert_eq!(lifetimes.take_due(40), (vec![Due::Expiring(b.clone(), 50)], Some(50)));
        lifetimes.bind(b.clone(), 200); // refreshed
        assert_eq!(lifetimes.take_due(60), (vec![], Some(90)));
        assert_eq!(
            lifetimes.take_due(100),
            (vec![Due::Expiring(a.clone(), 100), Due::Expired(a.clone(), 100)], Some(190))
        );
        lifetimes.forget(&b);
        assert_eq!(lifetimes.take_due(500), (vec![], None));
    }
}
