//! Where the bus finds its Redis, by `REDIS_URL`: one server (`redis://…`), or the master a set
//! of Sentinels names (`redis+sentinel://[:password@]host:port[,host:port…]/master-name`, the
//! port 26379 when left out). With Sentinels the master is asked for again at every
//! (re)connection and every [`WATCH_EVERY`], so that a failover moves the bus to the new master
//! without anyone editing `REDIS_URL`.

use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ErrorKind, RedisError, RedisResult};

/// How often the Sentinels are asked whether the master moved.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

const SENTINEL_PORT: u16 = 26379;

pub enum Topology {
    Single(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// Why a `REDIS_URL` names no topology the bus can use; `Ok` for one it can.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://") {
        return Err("Redis Cluster (redis+cluster://) is not supported yet; use redis:// or redis+sentinel://");
    }
    if !["redis://", "rediss://", "redis+sentinel://"].iter().any(|scheme| url.starts_with(scheme)) {
        return Err("must start with redis://, rediss:// or redis+sentinel://");
    }
    Ok(())
}

impl Topology {
    pub fn parse(url: &str) -> RedisResult<Topology> {
        check_url(url).map_err(invalid)?;
        match url.strip_prefix("redis+sentinel://") {
            Some(rest) => sentinel(rest).map(|client| Topology::Sentinel(tokio::sync::Mutex::new(client))),
            None => redis::Client::open(url).map(Topology::Single),
        }
    }

    /// A client of the master now.
    pub async fn master(&self) -> RedisResult<redis::Client> {
        match self {
            Topology::Single(client) => Ok(client.clone()),
            Topology::Sentinel(sentinels) => sentinels.lock().await.async_get_client().await,
        }
    }

    /// Whether the master can move (and should be watched).
    pub fn follows_failover(&self) -> bool {
        matches!(self, Topology::Sentinel(_))
    }
}

/// The address a client connects to, to tell masters apart.
pub fn address(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// `[:password@]host[:port][,host[:port]…]/master-name`.
fn sentinel(rest: &str) -> RedisResult<SentinelClient> {
    let (hosts, master) = rest
        .rsplit_once('/')
        .filter(|(_, name)| !name.is_empty())
        .ok_or_else(|| invalid("redis+sentinel:// needs the master's name after the hosts: …/mymaster"))?;
    let (password, hosts) = match hosts.rsplit_once('@') {
        Some((credentials, hosts)) => (Some(credentials.rsplit(':').next().unwrap_or(credentials)), hosts),
        None => (None, hosts),
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => {
                (name, port.parse().map_err(|_| invalid("redis+sentinel://: a port is not a number"))?)
            }
            None => (host, SENTINEL_PORT),
        };
        sentinels.push(ConnectionAddr::Tcp(name.to_owned(), port));
    }
    if sentinels.is_empty() {
        return Err(invalid("redis+sentinel:// names no Sentinel"));
    }
    let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?;
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        builder = builder.set_client_to_redis_password(password).set_client_to_sentinel_password(password);
    }
    builder.build()
}

fn invalid(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_topology_and_bad_ones_are_refused() {
        assert!(matches!(Topology::parse("redis://127.0.0.1:6379"), Ok(Topology::Single(_))));
        let parsed = Topology::parse("redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2/mymaster");
        assert!(matches!(parsed, Ok(Topology::Sentinel(_))));
        for bad in ["redis+sentinel://10.0.0.1:26379", "redis+sentinel:///m", "redis+sentinel://h:x/m"] {
            assert!(Topology::parse(bad).is_err(), "{bad}");
        }
        let cluster = Topology::parse("redis+cluster://10.0.0.1:7000").err().unwrap();
        assert!(cluster.to_string().contains("not supported yet"));
    }
}
