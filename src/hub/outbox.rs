//! A plain WebSocket connection's mailbox: a bounded send queue, holding memory only while it
//! holds frames and drained by the connection's own task, and the reason the hub ended the
//! connection, if it did. An idle connection's mailbox is a few words: a channel would
//! preallocate a block of slots per connection, and a watch channel for the end takes 300 bytes.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Why the hub ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    SlowConsumer,
    /// A room operation disconnected it (a backend's `disconnectSockets`).
    Disconnected,
    /// Its token expired.
    Expired,
    /// The server is shutting down and closing its connections one by one.
    Draining,
    /// The directory revoked its user.
    Revoked,
}

/// A WebSocket text frame, built once per publication and dialect and shared by every
/// connection it goes to (a reference count, not a copy, per delivery).
pub type Frame = axum::extract::ws::Utf8Bytes;

pub struct Outbox {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Frames were queued, or the connection was ended.
    queued: Notify,
    /// The queue was emptied (for [`Outbox::push_waiting`]).
    drained: Notify,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Frame>,
    /// Why the connection was ended; the first reason given stands.
    ended: Option<Kick>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox { queue: Mutex::default(), capacity, queued: Notify::new(), drained: Notify::new() }
    }

    /// Queues a frame. A full queue means the connection is not keeping up: it is ended as a
    /// slow consumer instead (its task closes it and unregisters), and false is returned.
    pub fn push(&self, frame: Frame) -> bool {
        let mut queue = self.queue.lock().unwrap();
        let fits = queue.frames.len() < self.capacity;
        if fits {
            queue.frames.push_back(frame);
        } else {
            queue.ended.get_or_insert(Kick::SlowConsumer);
        }
        drop(queue);
        self.queued.notify_one();
        fits
    }

    /// Ends the connection (its task closes it, telling the client why). The first reason
    /// stands.
    pub fn end(&self, why: Kick) {
        self.queue.lock().unwrap().ended.get_or_insert(why);
        self.queued.notify_one();
    }

    /// Why the connection was ended, if it was.
    pub fn ended(&self) -> Option<Kick> {
        self.queue.lock().unwrap().ended
    }

    /// Waits until the connection is ended (cancel-safe).
    pub async fn wait_ended(&self) -> Kick {
        loop {
            let mut queued = pin!(self.queued.notified());
            queued.as_mut().enable();
            if let Some(why) = self.ended() {
                return why;
            }
            queued.await;
        }
    }

    /// Queues a frame, waiting while the queue is full (a history replay, which must not count
    /// as a slow consumer).
    pub async fn push_waiting(&self, frame: Frame) {
        loop {
            let mut drained = pin!(self.drained.notified());
            drained.as_mut().enable();
            {
                let mut queue = self.queue.lock().unwrap();
                if queue.frames.len() < self.capacity {
                    queue.frames.push_back(frame);
                    drop(queue);
                    self.queued.notify_one();
                    return;
                }
            }
            drained.await;
        }
    }

    /// Waits until something is queued or the connection is ended (cancel-safe: nothing is
    /// taken).
    pub async fn wait(&self) {
        loop {
            let mut queued = pin!(self.queued.notified());
            queued.as_mut().enable();
            let ready = {
                let queue = self.queue.lock().unwrap();
                !queue.frames.is_empty() || queue.ended.is_some()
            };
            if ready {
                return;
            }
            queued.await;
        }
    }

    /// Takes every queued frame, leaving an empty queue that holds no memory.
    pub fn take(&self) -> VecDeque<Frame> {
        let taken = std::mem::take(&mut self.queue.lock().unwrap().frames);
        if !taken.is_empty() {
            self.drained.notify_waiters();
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_full_queue_refuses_and_ends_the_connection_as_a_slow_consumer() {
        let outbox = Outbox::new(2);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert_eq!(outbox.ended(), None);
        assert!(!outbox.push("c".into()));
        let taken: Vec<String> = outbox.take().iter().map(Frame::to_string).collect();
        assert_eq!(taken, ["a", "b"]);
        assert!(outbox.take().is_empty());
        assert!(outbox.push("d".into()));
        assert_eq!(outbox.ended(), Some(Kick::SlowConsumer));
    }

    #[tokio::test]
    async fn the_first_reason_to_end_stands_and_wakes_the_connection() {
        let outbox = Arc::new(Outbox::new(4));
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                outbox.wait().await;
                outbox.wait_ended().await
            }
        });
        outbox.end(Kick::Revoked);
        outbox.end(Kick::Expired);
        assert_eq!(waiting.await.unwrap(), Kick::Revoked);
        assert!(outbox.take().is_empty());
    }

    #[tokio::test]
    async fn a_waiting_push_goes_in_once_the_queue_is_taken() {
        let outbox = Arc::new(Outbox::new(1));
        assert!(outbox.push("a".into()));
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push_waiting("b".into()).await }
        });
        outbox.wait().await;
        assert_eq!(outbox.take().len(), 1);
        waiting.await.unwrap();
        outbox.wait().await;
        assert_eq!(outbox.take().front().map(Frame::to_string), Some("b".into()));
    }
}
