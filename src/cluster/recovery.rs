//! The recovery log and resumable sessions in Redis, so that a client can resume on any
//! instance. The log is a stream per room (and one for everyone) the numbering script appends
//! to in the same step as it publishes (so log order is delivery order), under positions that
//! are one sequence across the streams; each is trimmed by age to the recovery window and a
//! margin, and expires that long after its last entry. A resume reads the streams of its
//! session's rooms only. A connected session is a field of its instance's hash, which expires the window
//! after the instance's last heartbeat (a killed instance's sessions stay resumable that long),
//! and a pointer says which instance holds it (a resumed session keeps its id wherever it
//! lands); a disconnected one is a key of its own that expires after the window. Taking a
//! session for resumption removes it, so it is resumed once, and only by its user: whose it is
//! is checked in the script that removes it.

use std::sync::LazyLock;
use std::time::Duration;

use super::Bus;
use super::keys::Stream;
use crate::recovery::Position;

/// Stream entries as XRANGE answers them: `(id, [(field, value)])`.
type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// How long the pointer to a connected session's instance lasts (a connection older than this
/// whose instance is killed is looked up by the instance that created its session only).
const SESSION_HOME: Duration = Duration::from_secs(24 * 3600);

/// Takes the released session at KEYS[1] if its `user` is ARGV[1]. Answers `{"taken", session}`,
/// `{"other"}` (left as it is) or `{"missing"}` (none, or one that does not read as a session).
const TAKE_RELEASED_SCRIPT: &str = r"
local session = redis.call('GET', KEYS[1])
if not session then return {'missing'} end
local ok, decoded = pcall(cjson.decode, session)
if not ok or type(decoded) ~= 'table' then return {'missing'} end
if decoded.user ~= ARGV[1] then return {'other'} end
redis.call('DEL', KEYS[1])
return {'taken', session}
";

/// The same for the connected session ARGV[1] of the instance hash KEYS[1], user ARGV[2].
const TAKE_HELD_SCRIPT: &str = r"
local session = redis.call('HGET', KEYS[1], ARGV[1])
if not session then return {'missing'} end
local ok, decoded = pcall(cjson.decode, session)
if not ok or type(decoded) ~= 'table' then return {'missing'} end
if decoded.user ~= ARGV[2] then return {'other'} end
redis.call('HDEL', KEYS[1], ARGV[1])
return {'taken', session}
";

static TAKE_RELEASED: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE_RELEASED_SCRIPT));
static TAKE_HELD: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE_HELD_SCRIPT));

/// What taking a session found in Redis (see [`crate::recovery::Taken`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenSession {
    /// The user's session, as saved (JSON), now removed.
    Taken(String),
    OtherUsers,
    Missing,
}

impl TakenSession {
    fn read(reply: Vec<String>) -> TakenSession {
        let mut reply = reply.into_iter();
        match (reply.next().as_deref(), reply.next()) {
            (Some("taken"), Some(session)) => TakenSession::Taken(session),
            (Some("other"), _) => TakenSession::OtherUsers,
            _ => TakenSession::Missing,
        }
    }
}

/// Kept past the window: a publication in flight when a client dropped is still logged when it
/// resumes at the window's end.
pub(super) const LOG_MARGIN: Duration = Duration::from_secs(30);

impl Bus {
    /// Milliseconds since the epoch before which log entries may be trimmed.
    pub(super) fn log_floor_ms(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        now.saturating_sub((self.inner.recovery_window + LOG_MARGIN).as_millis() as u64)
    }

    /// How long a log stream outlives its last entry: the window and the margin, after which
    /// every entry it holds would be trimmed anyway.
    pub(super) fn log_lifetime_ms(&self) -> u64 {
        (self.inner.recovery_window + LOG_MARGIN).as_millis() as u64
    }

    /// The newest position handed out (`0-0` before the first).
    pub async fn log_tail(&self) -> redis::RedisResult<String> {
        let last: Option<String> =
            redis::cmd("GET").arg(self.inner.keys.log_last()).query_async(&mut self.connection()).await?;
        Ok(last.unwrap_or_else(|| "0-0".to_owned()))
    }

    /// Entries after `after` (a position) in the log streams of `rooms` and of everyone, oldest
    /// first, each once, as (position, published message body). Only those streams are read.
    pub async fn log_since(&self, after: &str, rooms: &[String]) -> redis::RedisResult<Vec<(String, Vec<u8>)>> {
        let keys = &self.inner.keys;
        let streams = rooms.iter().map(|r| Stream::Room(r)).chain([Stream::Everyone]);
        let mut reads = redis::pipe();
        for stream in streams {
            reads.cmd("XRANGE").arg(keys.log(stream)).arg(format!("({after}")).arg("+");
        }
        let read: Vec<Entries> = reads.query_async(&mut self.connection()).await?;
        let mut merged: Vec<(Position, String, Vec<u8>)> = read
            .into_iter()
            .flatten()
            .filter_map(|(id, fields)| {
                let body = fields.into_iter().find(|(f, _)| f == "m")?.1;
                Some((Position::parse(&id)?, id, body))
            })
            .collect();
        merged.sort_by_key(|(position, ..)| *position);
        merged.dedup_by_key(|(position, ..)| *position);
        Ok(merged.into_iter().map(|(_, id, body)| (id, body)).collect())
    }

    /// Records a connected session of this instance.
    pub async fn save_session(&self, id: &str, session: &str) -> redis::RedisResult<()> {
        let keys = &self.inner.keys;
        redis::pipe()
            .hset(keys.sessions(&self.inner.instance), id, session)
            .ignore()
            .pexpire(keys.sessions(&self.inner.instance), self.sessions_ttl_ms())
            .ignore()
            .cmd("SET")
            .arg(keys.session_home(id))
            .arg(&self.inner.instance)
            .arg("PX")
            .arg(SESSION_HOME.as_millis() as u64)
            .ignore()
            .query_async(&mut self.connection())
            .await
    }

    /// Records a session whose socket closed, resumable for the recovery window.
    pub async fn release_session(&self, id: &str, session: &str) -> redis::RedisResult<()> {
        let window = self.inner.recovery_window;
        let keys = &self.inner.keys;
        redis::pipe()
            .hdel(keys.sessions(&self.inner.instance), id)
            .ignore()
            .del(keys.session_home(id))
            .ignore()
            .cmd("SET")
            .arg(keys.session(id))
            .arg(session)
            .arg("PX")
            .arg(window.as_millis() as u64)
            .ignore()
            .query_async(&mut self.connection())
            .await
    }

    /// Takes `user`'s session: a disconnected one, else one an instance still holds as
    /// connected (it died, or has not yet seen the connection drop); `created_on` is the
    /// instance that created it, asked when no pointer says where it is. Each place is read,
    /// checked for its owner and emptied in one script, so another user's session is never
    /// taken, whatever runs meanwhile.
    pub async fn take_session(&self, id: &str, user: &str, created_on: &str) -> redis::RedisResult<TakenSession> {
        let keys = &self.inner.keys;
        let mut connection = self.connection();
        let released: Vec<String> = TAKE_RELEASED.key(keys.session(id)).arg(user).invoke_async(&mut connection).await?;
        match TakenSession::read(released) {
            TakenSession::Missing => {}
            found => return Ok(found),
        }
        let home: Option<String> = redis::cmd("GET").arg(keys.session_home(id)).query_async(&mut connection).await?;
        let instance = home.as_deref().unwrap_or(created_on);
        let held: Vec<String> =
            TAKE_HELD.key(keys.sessions(instance)).arg(id).arg(user).invoke_async(&mut connection).await?;
        let found = TakenSession::read(held);
        if found != TakenSession::OtherUsers && home.is_some() {
            // Taken, or pointing at nothing: the pointer has served.
            redis::cmd("DEL").arg(keys.session_home(id)).query_async::<()>(&mut connection).await?;
        }
        Ok(found)
    }

    /// How long an instance's connected sessions outlive its last heartbeat.
    pub(super) fn sessions_ttl_ms(&self) -> i64 {
        (self.inner.recovery_window + self.inner.presence_ttl).as_millis() as i64
    }
}
