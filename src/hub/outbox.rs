//! A plain WebSocket connection's send queue: bounded, holding memory only while it holds
//! frames, and drained by the connection's own task. An idle connection's queue is a few words:
//! a channel would preallocate a block of slots per connection.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::plain::Frame;

pub struct Outbox {
    frames: Mutex<VecDeque<Frame>>,
    capacity: usize,
    /// Frames were queued.
    queued: Notify,
    /// The queue was emptied (for [`Outbox::push_waiting`]).
    drained: Notify,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            frames: Mutex::default(),
            capacity,
            queued: Notify::new(),
            drained: Notify::new(),
        }
    }

    /// Queues a frame; false when the queue is full (the connection is not keeping up).
    pub fn push(&self, frame: Frame) -> bool {
        let mut frames = self.frames.lock().unwrap();
        if frames.len() >= self.capacity {
            return false;
        }
        frames.push_back(frame);
        drop(frames);
        self.queued.notify_one();
        true
    }

    /// Queues a frame, waiting while the queue is full (a history replay, which must not count
    /// as a slow consumer).
    pub async fn push_waiting(&self, frame: Frame) {
        loop {
            let mut drained = pin!(self.drained.notified());
            drained.as_mut().enable();
            {
                let mut frames = self.frames.lock().unwrap();
                if frames.len() < self.capacity {
                    frames.push_back(frame);
                    drop(frames);
                    self.queued.notify_one();
                    return;
                }
            }
            drained.await;
        }
    }

    /// Waits until something is queued (cancel-safe: nothing is taken).
    pub async fn wait(&self) {
        loop {
            let mut queued = pin!(self.queued.notified());
            queued.as_mut().enable();
            if !self.frames.lock().unwrap().is_empty() {
                return;
            }
            queued.await;
        }
    }

    /// Takes every queued frame, leaving an empty queue that holds no memory.
    pub fn take(&self) -> VecDeque<Frame> {
        let taken = std::mem::take(&mut *self.frames.lock().unwrap());
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
    fn a_full_queue_refuses_and_taking_empties_it() {
        let outbox = Outbox::new(2);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.push("c".into()));
        let taken: Vec<String> = outbox.take().iter().map(Frame::to_string).collect();
        assert_eq!(taken, ["a", "b"]);
        assert!(outbox.take().is_empty());
        assert!(outbox.push("d".into()));
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
