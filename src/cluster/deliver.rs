//! Cross-instance delivery. With Redis configured, a publication is not delivered by the
//! instance that accepted it: it is published once on the deliver channel, and every instance,
//! that one included, delivers what it reads there to its *own* connections only. Each
//! publication thus reaches each subscriber once, whichever instance he is connected to.
//!
//! A Lua script takes the history offsets (`INCR` per room), appends a recorded publication to
//! the recovery log (`XADD`, its id the publication's position) and publishes, in one step, so
//! the order every instance reads equals offset order and log order, and offsets increase
//! strictly per room across the cluster.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Bus, Numbered};
use crate::event::EventName;
use crate::publication::{Audience, Payload, Publication, Source};
use crate::rooms::Room;

/// KEYS: the recovery log, then the rooms' offset counters. ARGV: channel, payload, whether to
/// log (`1`/`0`), the log's trim floor (ms), then per room a floor: the counter is raised to it
/// first (-1: no floor). A counter Redis lost (a restart that kept nothing) is refused with
/// `UNSEEDED` unless a floor comes with it, so the caller reads the database and asks again;
/// nothing is published then. Returns `{position, offsets}`; the message published is
/// `{offsets}\n{position}\n{payload}`.
const SCRIPT: &str = r"
for i = 2, #KEYS do
  local key = KEYS[i]
  local floor = tonumber(ARGV[i + 3])
  local current = redis.call('GET', key)
  if not current then
    if floor < 0 then return redis.error_reply('UNSEEDED') end
    redis.call('SET', key, floor)
  elseif floor >= 0 and tonumber(current) < floor then
    redis.call('SET', key, floor)
  end
end
local offsets = {}
for i = 2, #KEYS do offsets[i - 1] = redis.call('INCR', KEYS[i]) end
local position = ''
if ARGV[3] == '1' then
  position = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[4], '*', 'm', ARGV[2])
end
redis.call('PUBLISH', ARGV[1], table.concat(offsets, ',') .. '\n' .. position .. '\n' .. ARGV[2])
return {position, offsets}
";

/// The numbering script, and the rooms this instance numbered by itself while Redis was
/// unreachable: their counters must be raised past those offsets before Redis numbers them again.
pub(super) struct Numbering {
    script: redis::Script,
    numbered_alone: Mutex<HashSet<String>>,
}

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            script: redis::Script::new(SCRIPT),
            numbered_alone: Mutex::default(),
        }
    }
}

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

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Redis has no counter for some room: call again with floors for every room.
    #[error("offset counters need seeding")]
    Unseeded,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Bus {
    /// Numbers the publication in its history rooms (and, when it is recorded, in the recovery
    /// log) and sends it to every instance. `floors` holds, per room, an offset its counter must
    /// reach first (-1: none). Only JSON payloads travel (emitter arguments are delivered where
    /// they were received).
    pub async fn send(&self, publication: &Publication, history_rooms: &[String], floors: &[i64]) -> Result<Numbered, SendError> {
        let wire = Wire {
            id: publication.id,
            event: publication.event.to_string(),
            everyone: publication.audience.everyone,
            rooms: publication.audience.room_names(),
            except: publication.audience.except_names(),
            data: publication.json().clone(),
            history_rooms: history_rooms.to_vec(),
            ephemeral: publication.ephemeral,
        };
        let payload = serde_json::to_string(&wire).expect("serializable");
        let numbering = &self.inner.numbering;
        let mut invocation = numbering.script.prepare_invoke();
        invocation
            .key(self.inner.keys.log())
            .arg(self.inner.keys.deliver_channel())
            .arg(payload)
            .arg(if publication.ephemeral { "0" } else { "1" })
            .arg(self.log_floor_ms());
        for (room, floor) in history_rooms.iter().zip(floors) {
            invocation.key(self.inner.keys.offset(room));
            invocation.arg(*floor);
        }
        let (position, offsets): (String, Vec<i64>) = invocation.invoke_async(&mut self.connection()).await.map_err(|e| {
            if e.to_string().contains("UNSEEDED") {
                SendError::Unseeded
            } else {
                SendError::Redis(e)
            }
        })?;
        let mut alone = numbering.numbered_alone.lock().unwrap();
        for (room, floor) in history_rooms.iter().zip(floors) {
            if *floor >= 0 {
                alone.remove(room);
            }
        }
        Ok(Numbered {
            offsets: history_rooms.iter().cloned().zip(offsets).collect(),
            position: Some(position).filter(|p| !p.is_empty()),
        })
    }

    /// The last history offset the cluster handed out in `room` (0 when none).
    pub async fn room_offset(&self, room: &str) -> redis::RedisResult<i64> {
        let last: Option<i64> = redis::cmd("GET").arg(self.inner.keys.offset(room)).query_async(&mut self.connection()).await?;
        Ok(last.unwrap_or(0))
    }

    /// Records rooms numbered locally during an outage.
    pub fn numbered_alone(&self, rooms: &[(String, i64)]) {
        let mut alone = self.inner.numbering.numbered_alone.lock().unwrap();
        alone.extend(rooms.iter().map(|(r, _)| r.clone()));
    }

    /// Which of `rooms` need a floor on the next send.
    pub fn needs_floor(&self, rooms: &[String]) -> Vec<bool> {
        let alone = self.inner.numbering.numbered_alone.lock().unwrap();
        rooms.iter().map(|r| alone.contains(r)).collect()
    }
}

/// Reads a deliver-channel message back into a publication and how it was numbered.
pub(super) fn decode(message: &[u8]) -> Result<(Publication, Numbered), String> {
    let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
    let (header, rest) = text.split_once('\n').ok_or("no offset header")?;
    let (position, body) = rest.split_once('\n').ok_or("no position header")?;
    let wire: Wire = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let offsets: Vec<i64> = if header.is_empty() {
        Vec::new()
    } else {
        header
            .split(',')
            .map(|o| o.parse::<i64>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?
    };
    let history_rooms = wire.history_rooms.clone();
    let publication = publication(wire)?;
    let numbered = Numbered {
        offsets: history_rooms.into_iter().zip(offsets).collect(),
        position: Some(position.to_owned()).filter(|p| !p.is_empty()),
    };
    Ok((publication, numbered))
}

/// Reads a logged message body (the recovery log keeps the body alone) into its publication.
pub fn decode_body(body: &[u8]) -> Result<Publication, String> {
    publication(serde_json::from_slice(body).map_err(|e| e.to_string())?)
}

fn publication(wire: Wire) -> Result<Publication, String> {
    let parse = |names: Vec<String>| -> Result<Vec<Room>, String> {
        names.iter().map(|n| Room::parse(n).map_err(|e| e.to_string())).collect()
    };
    Ok(Publication {
        id: wire.id,
        event: EventName::parse(&wire.event).map_err(|e| e.to_string())?,
        audience: Audience {
            everyone: wire.everyone,
            rooms: parse(wire.rooms)?,
            except: parse(wire.except)?,
        },
        data: Payload::Json(wire.data),
        source: Source::Cluster,
        published_at: chrono::Utc::now(),
        ephemeral: wire.ephemeral,
    })
}
