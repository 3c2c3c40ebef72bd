//! Where the bus finds its Redis, by `REDIS_URL`: one server (`redis://…`), the master a set of
//! Sentinels names (`redis+sentinel://[:password@]host:port[,host:port…]/master-name`, the
//! port 26379 when left out), or a Redis Cluster (`redis+cluster://[:password@]host:port[,…]`,
//! any of its nodes). `rediss` in place of `redis` talks TLS to the servers. With Sentinels the
//! master is asked for again at every (re)connection and every [`WATCH_EVERY`], so that a
//! failover moves the bus to the new master without anyone editing `REDIS_URL`; on a Cluster
//! the redis crate follows the slots, and the bus watches which master holds its slot.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ErrorKind, RedisError, RedisResult};

use super::connection::{Commands, Listener, Messages, REDIS_TIMEOUT};

/// How often the Sentinels (or the cluster's slots) are asked whether the master moved.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

const SENTINEL_PORT: u16 = 26379;

pub enum Topology {
    Single(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    /// The seed nodes, as `redis://[:password@]host:port` (or `rediss://`).
    Cluster(Vec<String>),
}

impl Topology {
    pub fn parse(url: &str) -> RedisResult<Topology> {
        crate::config::check_redis_url(url).map_err(invalid)?;
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return sentinel(rest).map(|client| Topology::Sentinel(tokio::sync::Mutex::new(client)));
        }
        for (scheme, nodes) in [("redis+cluster://", "redis"), ("rediss+cluster://", "rediss")] {
            if let Some(rest) = url.strip_prefix(scheme) {
                return cluster_nodes(rest, nodes).map(Topology::Cluster);
            }
        }
        let info = redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(tcp_settings());
        redis::Client::open(info).map(Topology::Single)
    }

    /// The master to talk to now, connected.
    pub async fn master(&self) -> RedisResult<Master> {
        match self {
            Topology::Single(client) => Master::server(client.clone()).await,
            Topology::Sentinel(sentinels) => Master::server(sentinels.lock().await.async_get_client().await?).await,
            Topology::Cluster(nodes) => Master::cluster(nodes.clone()).await,
        }
    }

    /// The address of the master the Sentinels name now (`None` on other topologies).
    pub async fn named_master(&self) -> Option<RedisResult<redis::Client>> {
        match self {
            Topology::Sentinel(sentinels) => Some(sentinels.lock().await.async_get_client().await),
            _ => None,
        }
    }

    /// Whether the master can move (and should be watched).
    pub fn follows_failover(&self) -> bool {
        !matches!(self, Topology::Single(_))
    }

    /// Whether this is a Redis Cluster (hash-tagged names, sharded channels).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster(_))
    }
}

/// The master the commands go to: how to open a subscriber on it, its address (on a cluster,
/// the master of the bus's slot, filled in once known), and the commands' connection.
pub struct Master {
    pub opener: Opener,
    pub address: String,
    pub connection: Commands,
}

/// How to open a subscriber on a master.
#[derive(Clone)]
pub enum Opener {
    Server(Box<redis::Client>),
    Cluster(Vec<String>),
}

impl Opener {
    /// A new subscriber (on a cluster, on whichever nodes hold its channels).
    pub async fn listen(&self) -> RedisResult<(Listener, Messages)> {
        match self {
            Opener::Server(client) => Listener::server(client).await,
            Opener::Cluster(nodes) => {
                let (pushes, messages) = tokio::sync::mpsc::unbounded_channel();
                let client =
                    cluster_client(nodes).use_protocol(redis::ProtocolVersion::RESP3).push_sender(pushes).build()?;
                Listener::cluster(&client, messages).await
            }
        }
    }
}

impl Master {
    pub async fn server(client: redis::Client) -> RedisResult<Master> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection = redis::aio::ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Master {
            address: address(&client),
            opener: Opener::Server(Box::new(client)),
            connection: Commands::Server(connection),
        })
    }

    async fn cluster(nodes: Vec<String>) -> RedisResult<Master> {
        let client = cluster_client(&nodes).build()?;
        let connection = tokio::time::timeout(REDIS_TIMEOUT * 2, client.get_async_connection())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "connecting to the cluster timed out")))??;
        Ok(Master { opener: Opener::Cluster(nodes), address: String::new(), connection: Commands::Cluster(connection) })
    }
}

/// Every connection to Redis sends its commands at once: the redis crate leaves Nagle's
/// algorithm on, which can hold a command behind an unacknowledged one (a probe, a heartbeat).
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// A cluster client that gives up on a node as a single server's connection does.
fn cluster_client(nodes: &[String]) -> ClusterClientBuilder {
    ClusterClient::builder(nodes.to_vec())
        .tcp_settings(tcp_settings())
        .connection_timeout(REDIS_TIMEOUT)
        .response_timeout(REDIS_TIMEOUT)
        .retries(2)
        .min_retry_wait(50)
        .max_retry_wait(500)
}

/// The address a client connects to, to tell masters apart.
pub fn address(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

/// `[:password@]host:port[,host:port…]` into node URLs of `scheme`.
fn cluster_nodes(rest: &str, scheme: &str) -> RedisResult<Vec<String>> {
    let (credentials, hosts) = match rest.trim_end_matches('/').rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest.trim_end_matches('/')),
    };
    let nodes: Vec<String> =
        hosts.split(',').filter(|h| !h.is_empty()).map(|host| format!("{scheme}://{credentials}{host}")).collect();
    if nodes.is_empty() {
        return Err(invalid("redis+cluster:// names no node"));
    }
    for node in &nodes {
        redis::Client::open(node.as_str())?;
    }
    Ok(nodes)
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
    let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?
        .set_client_to_redis_tcp_settings(tcp_settings());
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
        match Topology::parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001") {
            Ok(Topology::Cluster(nodes)) => {
                assert_eq!(nodes, ["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7001"])
            }
            _ => panic!("a cluster URL"),
        }
        assert!(Topology::parse("redis+cluster://").is_err());
        assert!(Topology::parse("http://10.0.0.1").is_err());
    }
}
