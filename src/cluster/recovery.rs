//! The recovery log and resumable sessions in Redis, so that a client can resume on any
//! instance. The log is a stream the numbering script appends to in the same step as it
//! publishes (so log order is delivery order), trimmed by age to the recovery window and a
//! margin. A connected session is a field of its instance's hash, which expires the window
//! after the instance's last heartbeat (a killed instance's sessions stay resumable that long),
//! and a pointer says which instance holds it (a resumed session keeps its id wherever it
//! lands); a disconnected one is a key of its own that expires after the window. Taking a
//! session for resumption removes it, so it is resumed once.

use std::time::Duration;

use super::Bus;

/// Stream entries as XRANGE answers them: `(id, [(field, value)])`.
type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// How long the pointer to a connected session's instance lasts (a connection older than this
/// whose instance is killed is looked up by the instance that created its session only).
const SESSION_HOME: Duration = Duration::from_secs(24 * 3600);

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

    /// The id of the newest log entry (`0-0` for an empty log).
    pub async fn log_tail(&self) -> redis::RedisResult<String> {
        let last: Entries = redis::cmd("XREVRANGE")
            .arg(self.inner.keys.log())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection())
            .await?;
        Ok(last.into_iter().next().map(|(id, _)| id).unwrap_or_else(|| "0-0".to_owned()))
    }

    /// Log entries after `after` (a stream id), oldest first, as (id, published message body).
    pub async fn log_since(&self, after: &str) -> redis::RedisResult<Vec<(String, Vec<u8>)>> {
        let entries: Entries = redis::cmd("XRANGE")
            .arg(self.inner.keys.log())
            .arg(format!("({after}"))
            .arg("+")
            .query_async(&mut self.connection())
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, fields)| fields.into_iter().find(|(f, _)| f == "m").map(|(_, body)| (id, body)))
            .collect())
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

    /// Takes a session: a disconnected one, else one an instance still holds as connected (it
    /// died, or has not yet seen the connection drop); `created_on` is the instance that created
    /// it, asked when no pointer says where it is.
    pub async fn take_session(&self, id: &str, created_on: &str) -> redis::RedisResult<Option<String>> {
        let keys = &self.inner.keys;
        let mut connection = self.connection();
        let released: Option<String> = redis::cmd("GETDEL").arg(keys.session(id)).query_async(&mut connection).await?;
        if released.is_some() {
            return Ok(released);
        }
        let home: Option<String> = redis::cmd("GETDEL").arg(keys.session_home(id)).query_async(&mut connection).await?;
        let instance = home.as_deref().unwrap_or(created_on);
        let (held, _): (Option<String>, usize) = redis::pipe()
            .hget(keys.sessions(instance), id)
            .hdel(keys.sessions(instance), id)
            .query_async(&mut connection)
            .await?;
        Ok(held)
    }

    /// How long an instance's connected sessions outlive its last heartbeat.
    pub(super) fn sessions_ttl_ms(&self) -> i64 {
        (self.inner.recovery_window + self.inner.presence_ttl).as_millis() as i64
    }
}
