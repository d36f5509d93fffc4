//! The in-memory backend: an unbounded FIFO. It keeps the queue's shape (memory, then
//! backend, with `backend_depth` reported) until the disk backend replaces it.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{Backend, BackendError};
use crate::message::Message;

/// An unbounded in-memory FIFO.
#[derive(Default)]
pub struct MemoryBackend {
    messages: Mutex<VecDeque<Message>>,
    readable: Notify,
}

impl MemoryBackend {
    fn messages(&self) -> std::sync::MutexGuard<'_, VecDeque<Message>> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for MemoryBackend {
    fn put(&self, message: Message) -> Result<(), BackendError> {
        self.messages().push_back(message);
        self.readable.notify_waiters();
        Ok(())
    }

    fn try_take(&self) -> Option<Message> {
        self.messages().pop_front()
    }

    fn depth(&self) -> usize {
        self.messages().len()
    }

    fn empty(&self) {
        self.messages().clear();
    }

    fn readable(&self) -> &Notify {
        &self.readable
    }
}
