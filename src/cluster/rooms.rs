//! Room operations and member counts across instances. An operation is published on the rooms
//! channel and every instance (this one included) applies it to its own connections. A count
//! asks the other live instances for theirs and sums the answers that come within a deadline.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Bus, Handler};
use crate::publication::{Audience, RoomAction, RoomOp};

/// How long a count waits for the other instances' answers.
const COUNT_DEADLINE: Duration = Duration::from_millis(500);

/// What travels on the rooms channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Message {
    /// Apply `action` to the connections of the audience.
    #[serde(rename_all = "camelCase")]
    Apply { everyone: bool, rooms: Vec<String>, except: Vec<String>, action: RoomAction },
    /// Answer `{id, count}` on `reply_to` with the connections this instance has in `room`.
    #[serde(rename_all = "camelCase")]
    Count { id: Uuid, room: String, reply_to: String, origin: String },
    /// The recovery log's generation may have changed: read it again.
    Generation,
}

/// An answer to a count.
#[derive(Debug, Serialize, Deserialize)]
struct CountReply {
    id: Uuid,
    count: usize,
}

impl Bus {
    /// Sends a room operation to every instance (this one included).
    pub async fn room_op(&self, op: &RoomOp) -> redis::RedisResult<()> {
        let message = Message::Apply {
            everyone: op.target.everyone,
            rooms: op.target.room_names(),
            except: op.target.except_names(),
            action: op.action.clone(),
        };
        self.publish(&self.inner.keys.rooms_channel(), &message).await
    }

    /// The other live instances' connections in `room`: waits for each one's answer, or
    /// [`COUNT_DEADLINE`].
    pub async fn remote_count(&self, room: &str) -> redis::RedisResult<usize> {
        let others = self.live_instances().await?.saturating_sub(1);
        if others == 0 {
            return Ok(0);
        }
        let id = Uuid::new_v4();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.pending_counts.lock().unwrap().insert(id, tx);
        let query = Message::Count {
            id,
            room: room.to_owned(),
            reply_to: self.inner.keys.reply_channel(),
            origin: self.inner.instance.clone(),
        };
        let sent = self.publish(&self.inner.keys.rooms_channel(), &query).await;
        let mut total = 0;
        if sent.is_ok() {
            let deadline = tokio::time::Instant::now() + COUNT_DEADLINE;
            for _ in 0..others {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(count)) => total += count,
                    _ => break,
                }
            }
        }
        self.inner.pending_counts.lock().unwrap().remove(&id);
        sent.map(|_| total)
    }

    /// A message of the rooms channel: an operation to apply here, or a count to answer.
    pub(super) async fn room_message<H: Handler>(&self, handler: &H, payload: &[u8]) -> Result<(), String> {
        match serde_json::from_slice(payload).map_err(|e| e.to_string())? {
            Message::Apply { everyone, rooms, except, action } => {
                let mut target = Audience::from_names(&rooms, &except);
                target.everyone = everyone;
                handler.apply(RoomOp { target, action }).await;
                Ok(())
            }
            Message::Generation => {
                self.settle_generation_for(handler, false).await;
                Ok(())
            }
            Message::Count { origin, .. } if origin == self.inner.instance => Ok(()),
            Message::Count { id, room, reply_to, .. } => {
                let reply = CountReply { id, count: handler.count(&room) };
                self.publish(&reply_to, &reply).await.map_err(|e| e.to_string())
            }
        }
    }

    /// Tells every instance to read the log's generation again.
    pub(super) async fn announce_generation(&self) -> redis::RedisResult<()> {
        self.publish(&self.inner.keys.rooms_channel(), &Message::Generation).await
    }

    /// Hands an answer to the count waiting for it.
    pub(super) fn count_answered(&self, payload: &[u8]) -> Result<(), String> {
        let reply: CountReply = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if let Some(waiting) = self.inner.pending_counts.lock().unwrap().get(&reply.id) {
            let _ = waiting.send(reply.count);
        }
        Ok(())
    }

    async fn publish(&self, channel: &str, message: &impl Serialize) -> redis::RedisResult<()> {
        redis::cmd(self.inner.keys.publish_command())
            .arg(channel)
            .arg(serde_json::to_string(message).expect("serializable"))
            .query_async(&mut self.connection())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_operation_reads_back_as_sent() {
        for action in [
            RoomAction::Join(vec!["a".into()]),
            RoomAction::Leave(vec!["b".into(), "c".into()]),
            RoomAction::Disconnect,
        ] {
            let sent = Message::Apply {
                everyone: false,
                rooms: vec!["user:u".into()],
                except: vec![],
                action: action.clone(),
            };
            let text = serde_json::to_string(&sent).unwrap();
            match serde_json::from_str::<Message>(&text) {
                Ok(Message::Apply { action: read, rooms, .. }) => {
                    assert_eq!((read, rooms), (action, vec!["user:u".to_owned()]))
                }
                other => panic!("{text} read back as {other:?}"),
            }
        }
    }
}
