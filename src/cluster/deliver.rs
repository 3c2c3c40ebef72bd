//! Cross-instance delivery. With Redis configured, a publication is not delivered by the
//! instance that accepted it: it is published once on the deliver channel, and every instance,
//! that one included, delivers what it reads there to its *own* connections only. Each
//! publication thus reaches each subscriber once, whichever instance he is connected to.
//!
//! A Lua script takes the history offsets (`INCR` per room) and publishes in one step, so the
//! order every instance reads equals offset order, and offsets increase strictly per room across
//! the cluster.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Bus, Offsets};
use crate::event::EventName;
use crate::publication::{Audience, Payload, Publication, Source};
use crate::rooms::Room;

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
    /// Numbers the publication in its history rooms and sends it to every instance. `floors`
    /// holds, per room, an offset its counter must reach first (-1: none). Only JSON payloads
    /// travel (emitter arguments are delivered where they were received).
    pub async fn send(&self, publication: &Publication, history_rooms: &[String], floors: &[i64]) -> Result<Offsets, SendError> {
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
        invocation.arg(self.inner.keys.deliver_channel()).arg(payload);
        for (room, floor) in history_rooms.iter().zip(floors) {
            invocation.key(self.inner.keys.offset(room));
            invocation.arg(*floor);
        }
        let offsets: Vec<i64> = invocation.invoke_async(&mut self.connection()).await.map_err(|e| {
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
        Ok(history_rooms.iter().cloned().zip(offsets).collect())
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

/// Reads a deliver-channel message back into a publication and its offsets.
pub(super) fn decode(message: &[u8]) -> Result<(Publication, Offsets), String> {
    let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
    let (header, body) = text.split_once('\n').ok_or("no offset header")?;
    let wire: Wire = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let offsets: Vec<i64> = if header.is_empty() {
        Vec::new()
    } else {
        header
            .split(',')
            .map(|o| o.parse::<i64>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?
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
        data: Payload::Json(wire.data),
        source: Source::Cluster,
        published_at: chrono::Utc::now(),
        ephemeral: wire.ephemeral,
    };
    Ok((publication, wire.history_rooms.into_iter().zip(offsets).collect()))
}
