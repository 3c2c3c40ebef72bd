//! The bus's two connections to Redis, whatever the topology: [`Commands`] (scripts, publishes,
//! keys; multiplexed, reconnecting by itself) and a [`Listener`], the subscriber, with the
//! stream of [`Message`]s it reads. On one server the subscriber is a pub/sub connection; on a
//! Redis Cluster it is a RESP3 cluster connection whose pushes are the messages. Either stream
//! ends when its connection drops (on a Cluster, any node's), and the bus connects a new one.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, PubSubSink};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushKind, RedisFuture, RedisResult, Value};

/// How long one Redis call (or connecting) may take before the caller gives up on Redis.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The commands' connection; cheap to clone.
#[derive(Clone)]
pub enum Commands {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Server(connection) => connection.req_packed_command(cmd),
            Commands::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Commands::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Server(connection) => connection.get_db(),
            Commands::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A message the subscriber read: its channel and payload.
pub struct Message {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// What the subscriber reads, in the order Redis delivers it; ends when its connection does.
pub type Messages = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// The subscriber's command side: subscribes and unsubscribes while its [`Messages`] are read
/// elsewhere. Cheap to clone.
#[derive(Clone)]
pub enum Listener {
    Server(PubSubSink),
    Cluster(ClusterConnection),
}

impl Listener {
    /// A subscriber on one server, and its messages.
    pub async fn server(client: &redis::Client) -> RedisResult<(Listener, Messages)> {
        let (sink, stream) = client.get_async_pubsub().await?.split();
        let messages = stream.map(|message| Message {
            channel: message.get_channel_name().to_owned(),
            payload: message.get_payload_bytes().to_vec(),
        });
        Ok((Listener::Server(sink), Box::pin(messages)))
    }

    /// A subscriber on a cluster (a client built with RESP3 and `pushes` as its push sender),
    /// and its messages.
    pub async fn cluster(
        client: &redis::cluster::ClusterClient,
        pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    ) -> RedisResult<(Listener, Messages)> {
        let connection = client.get_async_connection().await?;
        let pushes =
            futures_util::stream::unfold(
                pushes,
                |mut pushes| async move { pushes.recv().await.map(|push| (push, pushes)) },
            );
        // A node's connection dropped: the crate subscribes again by itself, but what was
        // published meanwhile is gone. The messages end there, so that the bus counts the
        // subscriber as reconnected (its tracked sockets resume from the log).
        let pushes = pushes.take_while(|push| std::future::ready(push.kind != PushKind::Disconnection));
        let messages = pushes.filter_map(|push| async move {
            let mut data = push.data.into_iter();
            let (channel, payload) = match push.kind {
                PushKind::Message | PushKind::SMessage => (data.next()?, data.next()?),
                PushKind::PMessage => (data.nth(1)?, data.next()?),
                _ => return None,
            };
            Some(Message {
                channel: redis::from_redis_value(channel).ok()?,
                payload: redis::from_redis_value(payload).ok()?,
            })
        });
        Ok((Listener::Cluster(connection), Box::pin(messages)))
    }

    /// Subscribes the bus's channels (sharded on a cluster).
    pub async fn subscribe_bus(&mut self, channels: &[String]) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Listener::Server(sink) => within(sink.subscribe(channels)).await,
            Listener::Cluster(connection) => within(connection.ssubscribe(channels)).await,
        }
    }

    pub async fn unsubscribe_bus(&mut self, channels: &[String]) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Listener::Server(sink) => within(sink.unsubscribe(channels)).await,
            Listener::Cluster(connection) => within(connection.sunsubscribe(channels)).await,
        }
    }

    /// Subscribes backends' channels and patterns (never sharded).
    pub async fn subscribe_backends(&mut self, channels: &[String], patterns: &[String]) -> RedisResult<()> {
        match self {
            Listener::Server(sink) => {
                within(sink.subscribe(channels)).await?;
                within(sink.psubscribe(patterns)).await
            }
            Listener::Cluster(connection) => {
                within(connection.subscribe(channels)).await?;
                within(connection.psubscribe(patterns)).await
            }
        }
    }
}

/// A subscription command that gives up after [`REDIS_TIMEOUT`] (a subscriber whose connection
/// died may never answer), so that no caller waits on it for ever.
async fn within(command: impl std::future::Future<Output = RedisResult<()>>) -> RedisResult<()> {
    tokio::time::timeout(REDIS_TIMEOUT, command).await.unwrap_or_else(|_| {
        Err(redis::RedisError::from((redis::ErrorKind::Io, "the subscriber did not answer in time")))
    })
}
