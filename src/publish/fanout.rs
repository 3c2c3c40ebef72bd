//! Cross-instance delivery. With Redis configured, a publication is not delivered by the
//! instance that accepted it: it is published once on the deliver channel, and every instance,
//! that one included, delivers what it reads there to its *own* connections only. Each
//! publication thus reaches each subscriber once, whichever instance he is connected to.
//!
//! A Lua script takes the history offsets (`INCR` per room) and publishes in one step, so the
//! order every instance reads equals offset order, and offsets increase strictly per room across
//! the cluster. When Redis cannot be reached, the publisher falls back to local delivery.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Audience, EventName, Publication, Source};
use crate::rooms::Room;

/// The channel every instance subscribes to (after `REDIS_CHANNEL_PREFIX`).
pub const DELIVER_CHANNEL: &str = "switchyard#deliver";
/// Room operations and queries every instance answers for its own connections.
pub const ROOMS_CHANNEL: &str = "switchyard#rooms";
/// Where an instance hears answers to its queries: `switchyard#reply:{instance}`.
pub const REPLY_CHANNEL: &str = "switchyard#reply:";

/// A room operation or query between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum RoomOp {
    /// Take every connection in room `from` out of `rooms`.
    Leave { from: String, rooms: Vec<String> },
    /// Answer `{id, count}` on `reply_to` with the connections this instance has in `room`.
    #[serde(rename_all = "camelCase")]
    Count { id: Uuid, room: String, reply_to: String, origin: String },
}

/// An answer to a [`RoomOp::Count`].
#[derive(Debug, Serialize, Deserialize)]
pub struct CountReply {
    pub id: Uuid,
    pub count: usize,
}

/// KEYS: the rooms' offset counters. ARGV: channel, payload, then per room a floor: the counter
/// is raised to it first (-1: no floor). A counter Redis lost (a restart that kept nothing) is
/// refused with `UNSEEDED` unless a floor comes with it, so the caller reads the database and
/// asks again; nothing is published then.
const SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  local floor = tonumber(ARGV[i + 2])
  local current = redis.call('GET', key)
  if not current then
    if floor < 0 then return redis.error_reply('UNSEEDED') end
    redis.call('SET', key, floor)
  elseif floor >= 0 and tonumber(current) < floor then
    redis.call('SET', key, floor)
  end
end
local offsets = {}
for i, key in ipairs(KEYS) do offsets[i] = redis.call('INCR', key) end
redis.call('PUBLISH', ARGV[1], table.concat(offsets, ',') .. '\n' .. ARGV[2])
return offsets
";

/// A publication as it travels between instances.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: Uuid,
    event: String,
    everyone: bool,
    rooms: Vec<String>,
    except: Vec<String>,
    data: Value,
    /// The rooms whose offsets the header line carries, in the same order.
    history_rooms: Vec<String>,
    ephemeral: bool,
}

pub struct Fanout {
    connection: ConnectionManager,
    script: redis::Script,
    channel: String,
    key_prefix: String,
    /// Rooms this instance numbered by itself while Redis was unreachable: their counters must
    /// be raised past those offsets before Redis numbers them again.
    numbered_alone: Mutex<HashSet<String>>,
    prefix: String,
    instance: String,
    /// Count queries waiting for answers.
    pending: Mutex<HashMap<Uuid, tokio::sync::mpsc::UnboundedSender<usize>>>,
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Redis has no counter for some room: call again with floors for every room.
    #[error("offset counters need seeding")]
    Unseeded,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Fanout {
    pub async fn connect(url: &str, prefix: &str, instance: &str) -> redis::RedisResult<Fanout> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Fanout {
            connection,
            script: redis::Script::new(SCRIPT),
            channel: format!("{prefix}{DELIVER_CHANNEL}"),
            key_prefix: format!("{prefix}switchyard:offset:"),
            numbered_alone: Mutex::default(),
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
            pending: Mutex::default(),
        })
    }

    pub fn reply_channel(&self) -> String {
        format!("{}{REPLY_CHANNEL}{}", self.prefix, self.instance)
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Sends a room operation to every instance (this one included).
    pub async fn room_op(&self, op: &RoomOp) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH")
            .arg(format!("{}{ROOMS_CHANNEL}", self.prefix))
            .arg(serde_json::to_string(op).expect("serializable"))
            .query_async(&mut connection)
            .await
    }

    /// Sums the answers of the other instances to a count of `room`: waits for `others`
    /// answers, or 500 ms.
    pub async fn remote_count(&self, room: &str, others: usize) -> redis::RedisResult<usize> {
        if others == 0 {
            return Ok(0);
        }
        let id = Uuid::new_v4();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.pending.lock().unwrap().insert(id, tx);
        let op = RoomOp::Count {
            id,
            room: room.to_owned(),
            reply_to: self.reply_channel(),
            origin: self.instance.clone(),
        };
        let sent = self.room_op(&op).await;
        let mut total = 0;
        if sent.is_ok() {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
            for _ in 0..others {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(count)) => total += count,
                    _ => break,
                }
            }
        }
        self.pending.lock().unwrap().remove(&id);
        sent.map(|_| total)
    }

    /// Answers another instance's count query.
    pub async fn reply(&self, to: &str, reply: &CountReply) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH")
            .arg(to)
            .arg(serde_json::to_string(reply).expect("serializable"))
            .query_async(&mut connection)
            .await
    }

    /// Hands an answer to the query waiting for it.
    pub fn answer(&self, payload: &[u8]) -> Result<(), String> {
        let reply: CountReply = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if let Some(waiting) = self.pending.lock().unwrap().get(&reply.id) {
            let _ = waiting.send(reply.count);
        }
        Ok(())
    }

    /// True for the first instance that asks for `key` within `ttl`.
    pub async fn claim_key(&self, key: &str, ttl: std::time::Duration) -> bool {
        let mut connection = self.connection.clone();
        let claimed: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(format!("{}switchyard:claim:{key}", self.prefix))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut connection)
            .await;
        // If Redis cannot say, acting twice is better than never.
        claimed.map(|reply| reply.is_some()).unwrap_or(true)
    }

    /// Records rooms numbered locally during an outage.
    pub fn numbered_alone(&self, rooms: &[(String, i64)]) {
        self.numbered_alone.lock().unwrap().extend(rooms.iter().map(|(r, _)| r.clone()));
    }

    /// Which of `rooms` need a floor on the next send.
    pub fn needs_floor(&self, rooms: &[String]) -> Vec<bool> {
        let alone = self.numbered_alone.lock().unwrap();
        rooms.iter().map(|r| alone.contains(r)).collect()
    }

    /// True for exactly one instance of those that ask about the same message within a few
    /// seconds: every instance reads the JSON channels, one acts on each message. (Byte-identical
    /// messages on one channel within that window count as one.)
    pub async fn claim(&self, channel: &str, payload: &[u8]) -> bool {
        let digest = sha1_smol::Sha1::from(payload).digest().to_string();
        self.claim_key(&format!("{channel}:{digest}"), std::time::Duration::from_secs(5)).await
    }

    /// Numbers the publication in its history rooms and sends it to every instance. `floors`
    /// holds, per room, an offset its counter must reach first (-1: none).
    pub async fn send(
        &self,
        publication: &Publication,
        history_rooms: &[String],
        floors: &[i64],
    ) -> Result<Vec<(String, i64)>, SendError> {
        let wire = Wire {
            id: publication.id,
            event: publication.event.to_string(),
            everyone: publication.audience.everyone,
            rooms: publication.audience.room_names(),
            except: publication.audience.except_names(),
            data: publication.data.clone(),
            history_rooms: history_rooms.to_vec(),
            ephemeral: publication.ephemeral,
        };
        let payload = serde_json::to_string(&wire).expect("serializable");
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(&self.channel).arg(payload);
        for (room, floor) in history_rooms.iter().zip(floors) {
            invocation.key(format!("{}{room}", self.key_prefix));
            invocation.arg(*floor);
        }
        let mut connection = self.connection.clone();
        let offsets: Vec<i64> = invocation.invoke_async(&mut connection).await.map_err(|e| {
            if e.to_string().contains("UNSEEDED") {
                SendError::Unseeded
            } else {
                SendError::Redis(e)
            }
        })?;
        let mut alone = self.numbered_alone.lock().unwrap();
        for (room, floor) in history_rooms.iter().zip(floors) {
            if *floor >= 0 {
                alone.remove(room);
            }
        }
        Ok(history_rooms.iter().cloned().zip(offsets).collect())
    }
}

/// Reads a deliver-channel message back into a publication and its offsets.
pub fn decode(message: &[u8]) -> Result<(Publication, Vec<(String, i64)>), String> {
    let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
    let (header, body) = text.split_once('\n').ok_or("no offset header")?;
    let wire: Wire = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let offsets: Vec<i64> = if header.is_empty() {
        Vec::new()
    } else {
        header.split(',').map(|o| o.parse::<i64>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?
    };
    let parse = |names: Vec<String>| -> Result<Vec<Room>, String> {
        names.iter().map(|n| Room::parse(n).map_err(|e| e.to_string())).collect()
    };
    let publication = Publication {
        id: wire.id,
        event: EventName::parse(&wire.event).map_err(|e| e.to_string())?,
        audience: Audience {
            everyone: wire.everyone,
            rooms: parse(wire.rooms)?,
            except: parse(wire.except)?,
        },
        data: wire.data,
        source: Source::Cluster,
        published_at: chrono::Utc::now(),
        ephemeral: wire.ephemeral,
    };
    Ok((publication, wire.history_rooms.into_iter().zip(offsets).collect()))
}
