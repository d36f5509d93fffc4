//! A message queue as topics and channels hold them: up to `--mem-queue-size` messages in
//! memory, the rest in a [`Backend`] (in memory for now; the durability issue brings a disk
//! backend). Readers take from memory first, then from the backend.
//!
//! Like Go nsqd, the queue does not promise order across the two parts: once memory has room
//! again, new messages can pass older ones still in the backend.

mod memory_backend;
pub mod segment_log;

use tokio::sync::Notify;

use crate::message::Message;
pub use memory_backend::MemoryBackend;

/// Why a backend could not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message queue backend failed: {0}")]
pub struct BackendError(pub String);

/// Where messages beyond memory wait.
pub trait Backend: Send + Sync {
    /// Stores a message at the back.
    fn put(&self, message: Message) -> Result<(), BackendError>;
    /// Takes the front message, if any.
    fn try_take(&self) -> Option<Message>;
    /// Messages stored.
    fn depth(&self) -> usize;
    /// Drops every stored message.
    fn empty(&self);
    /// Notified (all waiters) when a message is stored.
    fn readable(&self) -> &Notify;
}

/// Memory first, then the backend.
pub struct MessageQueue {
    memory_tx: flume::Sender<Message>,
    memory_rx: flume::Receiver<Message>,
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageQueue")
            .field("memory", &self.memory_rx.len())
            .field("backend", &self.backend.depth())
            .finish()
    }
}

impl MessageQueue {
    /// A queue keeping `mem_queue_size` messages in memory (0: all in the backend).
    pub fn new(mem_queue_size: usize, backend: Box<dyn Backend>) -> Self {
        let (memory_tx, memory_rx) = flume::bounded(mem_queue_size);
        MessageQueue {
            memory_tx,
            memory_rx,
            backend,
        }
    }

    /// A queue with an in-memory backend.
    pub fn in_memory(mem_queue_size: usize) -> Self {
        Self::new(mem_queue_size, Box::new(MemoryBackend::default()))
    }

    /// Adds a message: to memory while there is room, else to the backend.
    pub fn put(&self, message: Message) -> Result<(), BackendError> {
        match self.memory_tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(
                flume::TrySendError::Full(message) | flume::TrySendError::Disconnected(message),
            ) => self.backend.put(message),
        }
    }

    /// The next message if one is waiting now.
    pub fn try_next(&self) -> Option<Message> {
        self.memory_rx
            .try_recv()
            .ok()
            .or_else(|| self.backend.try_take())
    }

    /// The next message, waiting for one. Cancel-safe: a message is taken only when the
    /// future completes.
    pub async fn next(&self) -> Option<Message> {
        loop {
            if let Ok(message) = self.memory_rx.try_recv() {
                return Some(message);
            }
            let readable = self.backend.readable().notified();
            tokio::pin!(readable);
            // Registered before looking, so a put between the look and the wait is not missed.
            readable.as_mut().enable();
            if let Some(message) = self.backend.try_take() {
                return Some(message);
            }
            tokio::select! {
                message = self.memory_rx.recv_async() => return message.ok(),
                _ = readable => {}
            }
        }
    }

    /// Messages waiting, in memory and in the backend.
    pub fn depth(&self) -> usize {
        self.memory_rx.len() + self.backend.depth()
    }

    /// Messages waiting in the backend.
    pub fn backend_depth(&self) -> usize {
        self.backend.depth()
    }

    /// Drops every waiting message.
    pub fn empty(&self) {
        while self.memory_rx.try_recv().is_ok() {}
        self.backend.empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(n: u8) -> Message {
        Message::new([n; 16], Bytes::from(vec![n]))
    }

    #[tokio::test]
    async fn overflows_to_the_backend_and_reads_both() {
        let queue = MessageQueue::in_memory(2);
        for n in 0..5 {
            queue.put(message(n)).unwrap();
        }
        assert_eq!((queue.depth(), queue.backend_depth()), (5, 3));
        let mut seen = Vec::new();
        while let Some(m) = queue.try_next() {
            seen.push(m.body[0]);
        }
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(queue.depth(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reader_gets_a_backend_message() {
        let queue = std::sync::Arc::new(MessageQueue::in_memory(0));
        let reader = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.backend.put(message(9)).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.map(|m| m.body[0]), Some(9));
    }
}
