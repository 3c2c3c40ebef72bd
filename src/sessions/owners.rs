//! Which client address opened each long-polling session, and whether the session was cut.
//! Only sessions opened by a long-polling handshake are here: they are the ones whose id later
//! requests carry (to poll, to post, to upgrade). A session opened directly on a WebSocket is
//! never named by a later request; one that is, is refused as unknown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Owners {
    sessions: Mutex<HashMap<Box<str>, Owner>>,
}

struct Owner {
    /// The client address that opened the session.
    address: IpAddr,
    /// The TCP connection the session upgraded to a WebSocket on, once it did.
    websocket: Option<SocketAddr>,
    opened: Instant,
    /// Cut by the server (a slow consumer, a drain): its next request is refused, so that its
    /// client reconnects.
    cut: bool,
}

/// Why a request naming a session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No long-polling session of this id (never opened, ended, or opened on a WebSocket).
    Unknown,
    /// The session was opened from another address.
    OtherAddress,
    /// The server cut the session.
    Cut,
}

impl Owners {
    /// A long-polling handshake from `address` opened `sid`.
    pub fn open(&self, sid: &str, address: IpAddr) {
        let owner = Owner { address, websocket: None, opened: Instant::now(), cut: false };
        self.sessions.lock().unwrap().insert(sid.into(), owner);
    }

    /// Whether a request from `address` may use `sid`; `upgrade` is the TCP connection of a
    /// WebSocket upgrade, remembered so that the session's transport can be cut later.
    pub fn admit(&self, sid: &str, address: IpAddr, upgrade: Option<SocketAddr>) -> Result<(), Refusal> {
        let mut sessions = self.sessions.lock().unwrap();
        let owner = sessions.get_mut(sid).ok_or(Refusal::Unknown)?;
        if owner.address != address {
            return Err(Refusal::OtherAddress);
        }
        if owner.cut {
            return Err(Refusal::Cut);
        }
        if upgrade.is_some() {
            owner.websocket = upgrade;
        }
        Ok(())
    }

    /// Marks `sid` cut; says the WebSocket it upgraded to, if it did.
    pub fn cut(&self, sid: &str) -> Option<SocketAddr> {
        let mut sessions = self.sessions.lock().unwrap();
        let owner = sessions.get_mut(sid)?;
        owner.cut = true;
        owner.websocket
    }

    /// Forgets the sessions older than `grace` that are no longer alive.
    pub fn sweep(&self, grace: Duration, alive: impl Fn(&str) -> bool) -> usize {
        let mut sessions = self.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|sid, owner| owner.opened.elapsed() < grace || alive(sid));
        before - sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    #[test]
    fn a_session_serves_the_address_that_opened_it_and_no_other() {
        let owners = Owners::default();
        owners.open("s1", HOME);
        assert_eq!(owners.admit("s1", HOME, None), Ok(()));
        assert_eq!(owners.admit("s1", ELSEWHERE, None), Err(Refusal::OtherAddress));
        assert_eq!(owners.admit("s2", HOME, None), Err(Refusal::Unknown));
    }

    #[test]
    fn a_cut_session_is_refused_even_to_its_owner_and_says_where_it_upgraded() {
        let owners = Owners::default();
        owners.open("s1", HOME);
        let websocket: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        owners.admit("s1", HOME, Some(websocket)).unwrap();
        assert_eq!(owners.cut("s1"), Some(websocket));
        assert_eq!(owners.admit("s1", HOME, None), Err(Refusal::Cut));
        assert_eq!(owners.cut("unknown"), None);
    }

    #[test]
    fn a_sweep_keeps_young_and_live_sessions() {
        let owners = Owners::default();
        owners.open("young", HOME);
        assert_eq!(owners.sweep(Duration::from_secs(60), |_| false), 0);
        owners.open("live", HOME);
        assert_eq!(owners.sweep(Duration::ZERO, |sid| sid == "live"), 1);
        assert_eq!(owners.sessions.lock().unwrap().len(), 1);
    }
}
