//! A message as nsqd moves it: ID, body, creation time and delivery attempts, and its wire
//! form inside a message frame: `[8-byte BE timestamp ns][2-byte BE attempts][16-byte ID][body]`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};

/// A message ID: 16 bytes of ASCII lowercase hex. Clients echo it in FIN, REQ and TOUCH.
pub type MessageId = [u8; 16];

/// The length of a message ID on the wire.
pub const MESSAGE_ID_LEN: usize = 16;

/// The bytes a message frame carries besides the body.
pub const HEADER_LEN: usize = 8 + 2 + MESSAGE_ID_LEN;

/// One message. Cloning shares the body. Equality compares what a message is (everything
/// but [`Message::published`], which only this process can know).
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub body: Bytes,
    /// Nanoseconds since the Unix epoch when it was published.
    pub timestamp: i64,
    /// Deliveries so far; incremented just before each delivery.
    pub attempts: u16,
    /// For DPUB: milliseconds to hold it before the first delivery (at most max-req-timeout,
    /// an hour by default).
    pub deferred_ms: u32,
    /// Its place in the topic's log (from 1), given when the log takes it; 0 before.
    pub seq: u64,
    /// When this process published it, on the monotonic clock; `None` once read back from
    /// disk. A DPUB's deferral counts from here while it is known, so a wall clock stepping
    /// between publication and the first read neither stretches nor cuts it.
    pub published: Option<tokio::time::Instant>,
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.body == other.body
            && self.timestamp == other.timestamp
            && self.attempts == other.attempts
            && self.deferred_ms == other.deferred_ms
            && self.seq == other.seq
    }
}

impl Eq for Message {}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Message {
    /// A new message published now.
    pub fn new(id: MessageId, body: Bytes) -> Self {
        Message {
            id,
            body,
            timestamp: now_ns(),
            attempts: 0,
            deferred_ms: 0,
            seq: 0,
            published: Some(tokio::time::Instant::now()),
        }
    }

    /// The size of the frame data this message encodes to.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Appends the wire form (frame data, without the frame header) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_i64(self.timestamp);
        out.put_u16(self.attempts);
        out.put_slice(&self.id);
        out.put_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_big_endian_header_then_body() {
        let mut message = Message::new(*b"0123456789abcdef", Bytes::from_static(b"hi"));
        message.timestamp = 0x0102_0304_0506_0708;
        message.attempts = 3;
        let mut out = Vec::new();
        message.encode(&mut out);
        assert_eq!(&out[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&out[8..10], &[0, 3]);
        assert_eq!(&out[10..26], b"0123456789abcdef");
        assert_eq!(&out[26..], b"hi");
        assert_eq!(out.len(), message.encoded_len());
    }
}
