//! A message as a log record's payload, big-endian: `seq: u64, timestamp: i64, attempts: u16,
//! deferred_ms: u32, id: [u8; 16]`, then the body.

use bytes::Bytes;

use crate::message::{Message, MESSAGE_ID_LEN};

/// Bytes before the body.
const PAYLOAD_HEADER: usize = 8 + 8 + 2 + 4 + MESSAGE_ID_LEN;

/// Appends `message`'s payload to `out`.
pub fn encode_into(out: &mut Vec<u8>, message: &Message) {
    out.extend_from_slice(&message.seq.to_be_bytes());
    out.extend_from_slice(&message.timestamp.to_be_bytes());
    out.extend_from_slice(&message.attempts.to_be_bytes());
    out.extend_from_slice(&message.deferred_ms.to_be_bytes());
    out.extend_from_slice(&message.id);
    out.extend_from_slice(&message.body);
}

/// The message in `payload`; `None` if it is too short to be one.
pub fn decode(payload: &[u8]) -> Option<Message> {
    if payload.len() < PAYLOAD_HEADER {
        return None;
    }
    let seq = u64::from_be_bytes(payload[0..8].try_into().ok()?);
    let timestamp = i64::from_be_bytes(payload[8..16].try_into().ok()?);
    let attempts = u16::from_be_bytes(payload[16..18].try_into().ok()?);
    let deferred_ms = u32::from_be_bytes(payload[18..22].try_into().ok()?);
    let id: [u8; MESSAGE_ID_LEN] = payload[22..PAYLOAD_HEADER].try_into().ok()?;
    Some(Message {
        id,
        body: Bytes::copy_from_slice(&payload[PAYLOAD_HEADER..]),
        timestamp,
        attempts,
        deferred_ms,
        seq,
        published: None,
    })
}
