//! Cross-instance delivery. With Redis configured, a publication is not delivered by the
//! instance that accepted it: it is published once on the channel of each of its rooms (or, for
//! everyone or more than [`ROOM_CHANNELS_MAX`] rooms, on the everyone channel), and every
//! instance with a member in one of those rooms, that one included, delivers it to its *own*
//! connections only. An instance reads only the rooms it has
//! members in ([`super::interest`]); one that reads a publication on two of its rooms' channels
//! delivers it once. Each publication thus reaches each subscriber once, whichever instance he
//! is connected to.
//!
//! A Lua script takes the history offsets (`INCR` per room), appends a recorded publication to
//! the log stream of each of its rooms under one position (positions are one sequence across
//! the streams) and publishes, in one step, so the order every instance reads equals offset
//! order and log order, and offsets increase strictly per room across the cluster. On a Redis
//! Cluster every name the script touches carries one hash tag, so it runs on one shard.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::keys::Stream;
use super::{Bus, Numbered};
use crate::event::EventName;
use crate::publication::{Audience, Payload, Publication, Source};
use crate::rooms::Room;

/// KEYS: the newest log position, the rooms' offset counters (ARGV[6] of them), then the log
/// stream of each channel. ARGV: the payload, whether to log (`1`/`0`), the log's trim floor
/// (ms), how long a stream outlives its last entry (ms), the publish command, the number of
/// counters, then per counter a floor: the counter is raised to it first (-1: no floor), then
/// the channels: one per stream, and any others (the older builds' channel). A counter Redis lost (a restart that kept nothing) is refused with `UNSEEDED`
/// unless a floor comes with it, so the caller reads the database and asks again; nothing is
/// published then. A logged publication's position is `{ms}-{seq}`, after the newest one handed
/// out. Returns `{position, offsets}`; the message published is `{offsets}\n{position}\n{payload}`.
const SCRIPT: &str = r"
local n = tonumber(ARGV[6])
for i = 1, n do
  local key = KEYS[1 + i]
  local floor = tonumber(ARGV[6 + i])
  local current = redis.call('GET', key)
  if not current then
    if floor < 0 then return redis.error_reply('UNSEEDED') end
    redis.call('SET', key, floor)
  elseif floor >= 0 and tonumber(current) < floor then
    redis.call('SET', key, floor)
  end
end
local offsets = {}
for i = 1, n do offsets[i] = redis.call('INCR', KEYS[1 + i]) end
local streams = #KEYS - 1 - n
local channels = #ARGV - 6 - n
local position = ''
if ARGV[2] == '1' then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local seq = 0
  local last = redis.call('GET', KEYS[1])
  if last then
    local last_ms, last_seq = string.match(last, '^(%d+)-(%d+)$')
    if ms <= tonumber(last_ms) then
      ms = tonumber(last_ms)
      seq = tonumber(last_seq) + 1
    end
  end
  position = string.format('%.0f-%.0f', ms, seq)
  redis.call('SET', KEYS[1], position)
  for j = 1, streams do
    redis.call('XADD', KEYS[1 + n + j], 'MINID', '~', ARGV[3], position, 'm', ARGV[1])
    redis.call('PEXPIRE', KEYS[1 + n + j], ARGV[4])
  end
end
local message = table.concat(offsets, ',') .. '\n' .. position .. '\n' .. ARGV[1]
for j = 1, channels do redis.call(ARGV[5], ARGV[6 + n + j], message) end
return {position, offsets}
";

/// The numbering script; the rooms this instance numbered by itself while Redis was
/// unreachable (their counters must be raised past those offsets before Redis numbers them
/// again); and the publications this instance sent that the channel has not brought back yet.
pub(super) struct Numbering {
    script: redis::Script,
    numbered_alone: Mutex<HashSet<String>>,
    /// By id (time-ordered). The channel's message for one of these is delivered from the
    /// publication in hand instead of being decoded again; a message that finds nothing here is
    /// decoded, so an entry given up costs a decode and nothing else.
    in_hand: Mutex<BTreeMap<Uuid, InHand>>,
    /// The publications read last: one sent to several rooms comes once per room channel this
    /// instance reads, one right after the other (the script publishes them in one step).
    recent: Mutex<VecDeque<Uuid>>,
    /// An instance of a build before interest-based delivery reads the bus: publish on its
    /// channel too (see [`super::keys`]).
    older_instances: AtomicBool,
}

/// A publication sent and not yet back, with the history rooms it was sent to be numbered in.
struct InHand {
    publication: Arc<Publication>,
    history_rooms: Vec<String>,
}

/// Publications kept in hand at most; past it the oldest is given up. Only messages that never
/// came back (sent while the subscriber was between connections) stay this long.
const IN_HAND_MAX: usize = 4_096;

/// Publications remembered as read, to drop their other rooms' copies.
const RECENT_MAX: usize = 64;

/// The most rooms a publication may name and still go out on each room's channel and log
/// stream; one naming more goes once on the everyone channel and stream, and each instance
/// delivers it to its members of those rooms. Per room, the script pays an XADD, a PEXPIRE and a
/// PUBLISH of the whole body, and an instance reading several of the rooms reads as many copies:
/// to 100 users, 1.7 ms more per delivery across instances than one message to every instance.
/// (@socket.io/redis-adapter draws the line at one room.) A resume reads the everyone stream too.
pub(super) const ROOM_CHANNELS_MAX: usize = 4;

impl Default for Numbering {
    fn default() -> Self {
        Numbering {
            script: redis::Script::new(SCRIPT),
            numbered_alone: Mutex::default(),
            in_hand: Mutex::default(),
            recent: Mutex::default(),
            older_instances: AtomicBool::new(false),
        }
    }
}

/// A publication as it travels between instances. `id` comes first: an instance recognises its
/// own publications by the body's opening bytes (see [`sent_id`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    id: Uuid,
    event: Cow<'a, str>,
    everyone: bool,
    rooms: Vec<String>,
    except: Vec<String>,
    data: Cow<'a, Value>,
    /// The rooms whose offsets the header line carries, in the same order.
    history_rooms: Cow<'a, [String]>,
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
    ///
    /// The publication is kept in hand until the channel brings it back, so this instance
    /// delivers it without decoding its own message.
    pub async fn send(
        &self,
        publication: &Arc<Publication>,
        history_rooms: &[String],
        floors: &[i64],
    ) -> Result<Numbered, SendError> {
        let payload = encode(publication, history_rooms);
        let numbering = &self.inner.numbering;
        let keys = &self.inner.keys;
        let rooms = stream_rooms(&publication.audience);
        let streams = streams(&rooms);
        // Kept only when this instance reads one of the channels (one it does not read never
        // brings the publication back), and before the script runs: its message may reach the
        // subscriber before its reply.
        let comes_back = rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|room| self.reads(room)));
        if comes_back {
            let mut in_hand = numbering.in_hand.lock().unwrap();
            if in_hand.len() >= IN_HAND_MAX {
                in_hand.pop_first();
            }
            let kept = InHand { publication: Arc::clone(publication), history_rooms: history_rooms.to_vec() };
            in_hand.insert(publication.id, kept);
        }
        let mut invocation = numbering.script.prepare_invoke();
        invocation
            .key(keys.log_last())
            .arg(payload)
            .arg(if publication.ephemeral { "0" } else { "1" })
            .arg(self.log_floor_ms())
            .arg(self.log_lifetime_ms())
            .arg(keys.publish_command())
            .arg(history_rooms.len());
        for (room, floor) in history_rooms.iter().zip(floors) {
            invocation.key(keys.offset(room));
            invocation.arg(*floor);
        }
        for stream in &streams {
            invocation.key(keys.log(*stream));
            invocation.arg(keys.deliver_channel(*stream));
        }
        if numbering.older_instances.load(Ordering::Relaxed) {
            invocation.arg(keys.legacy_deliver_channel());
        }
        let (position, offsets): (String, Vec<i64>) =
            invocation.invoke_async(&mut self.connection()).await.map_err(|e| {
                self.take(publication.id);
                if e.to_string().contains("UNSEEDED") { SendError::Unseeded } else { SendError::Redis(e) }
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

    /// Notes whether instances of a build before interest-based delivery read the bus: more
    /// readers of their channel than of the everyone channel (which only this build reads, and
    /// every instance of it reads both).
    pub(super) async fn watch_older_instances(&self) -> redis::RedisResult<()> {
        let keys = &self.inner.keys;
        if keys.sharded() {
            return Ok(());
        }
        let (older, everyone) = (keys.legacy_deliver_channel(), keys.deliver_channel(Stream::Everyone));
        let counts: Vec<(String, usize)> =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&older).arg(&everyone).query_async(&mut self.connection()).await?;
        let count = |name: &str| counts.iter().find(|(c, _)| c == name).map_or(0, |(_, n)| *n);
        let present = count(&older) > count(&everyone);
        if self.inner.numbering.older_instances.swap(present, Ordering::Relaxed) != present {
            tracing::warn!(present, "redis: instances of a build before interest-based delivery on the bus");
        }
        Ok(())
    }

    /// The last history offset the cluster handed out in `room` (0 when none).
    pub async fn room_offset(&self, room: &str) -> redis::RedisResult<i64> {
        let last: Option<i64> =
            redis::cmd("GET").arg(self.inner.keys.offset(room)).query_async(&mut self.connection()).await?;
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

    /// Takes back a publication this instance sent, unless the channel has brought it back
    /// already (and it was delivered from there).
    pub fn take_sent(&self, id: Uuid) -> Option<Arc<Publication>> {
        self.take(id).map(|kept| kept.publication)
    }

    fn take(&self, id: Uuid) -> Option<InHand> {
        self.inner.numbering.in_hand.lock().unwrap().remove(&id)
    }

    /// Reads a deliver-channel message: the publication (this instance's own from the hand it
    /// was kept in, another's decoded) and how it was numbered.
    /// `None` for a copy of a publication already read on another of its rooms' channels.
    pub(super) fn receive(&self, message: &[u8]) -> Result<Option<(Arc<Publication>, Numbered)>, String> {
        let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
        let (header, rest) = text.split_once('\n').ok_or("no offset header")?;
        let (position, body) = rest.split_once('\n').ok_or("no position header")?;
        let offsets: Vec<i64> = if header.is_empty() {
            Vec::new()
        } else {
            header.split(',').map(|o| o.parse::<i64>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?
        };
        let id = sent_id(body);
        if let Some(id) = id {
            let mut recent = self.inner.numbering.recent.lock().unwrap();
            if recent.contains(&id) {
                return Ok(None);
            }
            if recent.len() >= RECENT_MAX {
                recent.pop_front();
            }
            recent.push_back(id);
        }
        let (publication, history_rooms) = match id.and_then(|id| self.take(id)) {
            Some(kept) => (kept.publication, kept.history_rooms),
            None => {
                let mut wire: Wire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                let history_rooms = std::mem::take(&mut wire.history_rooms).into_owned();
                (Arc::new(publication(wire)?), history_rooms)
            }
        };
        let numbered = Numbered {
            offsets: history_rooms.into_iter().zip(offsets).collect(),
            position: Some(position.to_owned()).filter(|p| !p.is_empty()),
        };
        Ok(Some((publication, numbered)))
    }
}

/// The rooms whose channels (and log streams) a publication goes to, each once; `None` for
/// everyone's (everyone, or more than [`ROOM_CHANNELS_MAX`] rooms).
fn stream_rooms(audience: &Audience) -> Option<Vec<String>> {
    if audience.everyone {
        return None;
    }
    let mut rooms = audience.room_names();
    let mut seen = HashSet::new();
    rooms.retain(|r| seen.insert(r.clone()));
    (rooms.len() <= ROOM_CHANNELS_MAX).then_some(rooms)
}

/// The streams of [`stream_rooms`]'s answer.
fn streams(rooms: &Option<Vec<String>>) -> Vec<Stream<'_>> {
    match rooms {
        None => vec![Stream::Everyone],
        Some(rooms) => rooms.iter().map(|r| Stream::Room(r)).collect(),
    }
}

/// A publication's wire form: its fields, and the history rooms the script numbers, in order.
fn encode(publication: &Publication, history_rooms: &[String]) -> String {
    let wire = Wire {
        id: publication.id,
        event: Cow::Borrowed(publication.event.as_str()),
        everyone: publication.audience.everyone,
        rooms: publication.audience.room_names(),
        except: publication.audience.except_names(),
        data: Cow::Borrowed(publication.json()),
        history_rooms: Cow::Borrowed(history_rooms),
        ephemeral: publication.ephemeral,
    };
    serde_json::to_string(&wire).expect("serializable")
}

/// The id a wire body opens with (`{"id":"…"`), without reading the rest of it.
fn sent_id(body: &str) -> Option<Uuid> {
    let text = body.strip_prefix(r#"{"id":""#)?.get(..36)?;
    Uuid::try_parse(text).ok()
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
        audience: Audience { everyone: wire.everyone, rooms: parse(wire.rooms)?, except: parse(wire.except)? },
        data: Payload::Json(wire.data.into_owned()),
        source: Source::Cluster,
        published_at: chrono::Utc::now(),
        ephemeral: wire.ephemeral,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::Source;
    use serde_json::json;

    fn sample() -> Publication {
        let audience = Audience::rooms(vec![Room::parse("org:o1").unwrap()]);
        Publication::new(EventName::parse("message:new").unwrap(), audience, json!({"text": "hi"}), Source::Http)
    }

    #[test]
    fn an_instance_knows_its_own_publication_by_the_opening_bytes() {
        let publication = sample();
        let body = encode(&publication, &["org:o1".to_owned()]);
        assert_eq!(sent_id(&body), Some(publication.id));
        let back = decode_body(body.as_bytes()).unwrap();
        assert_eq!((back.id, back.json()), (publication.id, publication.json()));
    }

    #[test]
    fn a_body_that_does_not_open_with_an_id_is_not_taken_for_one() {
        assert_eq!(sent_id(r#"{"event":"message:new","id":"0192f0a0-0000-7000-8000-000000000000"}"#), None);
        assert_eq!(sent_id(r#"{"id":"not-a-uuid-at-all-but-thirty-six-ch"}"#), None);
        assert_eq!(sent_id(r#"{"id":"short"}"#), None);
    }
}
