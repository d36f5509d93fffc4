//! `MPUB`: publish several messages at once, all or none.
//!
//! # Format
//! `MPUB <topic>\n[4-byte body size][4-byte count]([4-byte size][bytes])*` → `OK`. Every
//! message is validated before any is queued.

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::publish::{publish, topic_param};
use super::{CmdResult, Cx};
use crate::message::Message;
use crate::protocol::{read_body_into, read_size, ClientError};

pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let topic = topic_param("MPUB", params, 2).map_err(|mut e| {
        // Go repeats the code in this one description.
        if e.code == "E_BAD_TOPIC" {
            e.description = format!("E_BAD_TOPIC {}", e.description);
        }
        e
    })?;
    // Go checks before reading the body.
    super::auth::check(cx, "MPUB", topic, "").await?;
    let body = read_mpub_body(cx.reader, cx.options.max_body_size, cx.options.max_msg_size).await?;
    let bodies = split_messages(Bytes::from(body), cx.options.max_msg_size)?;
    let messages = bodies
        .into_iter()
        .map(|b| Message::new(cx.broker.next_id(), b))
        .collect();
    publish(cx, topic, messages, "E_MPUB_FAILED", "MPUB").await
}

/// The error Go's MPUB gives when the body's bytes stop (the peer closed, or the read
/// deadline passed) after `partial`: Go reads the count and each message as they come, so it
/// fails at the first piece that is missing or invalid, and says which.
fn stalled(partial: &[u8], max_msg_size: i64, max_body_size: i64) -> ClientError {
    let read_i32 = |at: usize| -> Option<i32> {
        partial
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(count) = read_i32(0) else {
        return ClientError::fatal("E_BAD_BODY", "MPUB failed to read message count");
    };
    // Go's bound: 4 bytes of count, then at least 5 per message.
    if count <= 0 || i64::from(count) > (max_body_size - 4) / 5 {
        return ClientError::fatal("E_BAD_BODY", format!("MPUB invalid message count {count}"));
    }
    let mut at = 4;
    for i in 0..count {
        let Some(size) = read_i32(at) else {
            return ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB failed to read message({i}) body size"),
            );
        };
        if size <= 0 {
            return ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB invalid message({i}) body size {size}"),
            );
        }
        if i64::from(size) > max_msg_size {
            return ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB message too big {size} > {max_msg_size}"),
            );
        }
        at += 4 + size as usize;
        if at > partial.len() {
            return ClientError::fatal("E_BAD_MESSAGE", "MPUB failed to read message body");
        }
    }
    // Every message arrived and only the rest of the announced size did not (Go would not
    // have waited for it).
    ClientError::fatal("E_BAD_BODY", "MPUB failed to read body")
}

/// Reads MPUB's sized body: a size in 1..=`max_body_size`, else `E_BAD_BODY`. Nothing is
/// reserved before the size is checked, and the buffer grows only as bytes arrive. When the
/// bytes stop (the peer closed, or the read deadline passed) the error is the one Go gives
/// for the piece that is missing ([`stalled`]).
pub async fn read_mpub_body(
    reader: &mut (impl AsyncRead + Unpin),
    max_body_size: i64,
    max_msg_size: i64,
) -> Result<Vec<u8>, ClientError> {
    let size = read_size(reader)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "MPUB failed to read body size"))?;
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB invalid body size {size}"),
        ));
    }
    if i64::from(size) > max_body_size {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB body too big {size} > {max_body_size}"),
        ));
    }
    let mut body = Vec::new();
    if read_body_into(reader, size as usize, &mut body)
        .await
        .is_err()
    {
        return Err(stalled(&body, max_msg_size, max_body_size));
    }
    Ok(body)
}

/// Splits an MPUB body into message bodies (shared, not copied): `[4-byte count]` (at least
/// 1, and no more than the body could hold), then that many `[4-byte size][bytes]`, each of
/// 1..=`max_msg_size` bytes; bytes after the last message are ignored, as in Go.
pub fn split_messages(body: Bytes, max_msg_size: i64) -> Result<Vec<Bytes>, ClientError> {
    let read_i32 = |at: usize| -> Option<i32> {
        body.get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = read_i32(0)
        .ok_or_else(|| ClientError::fatal("E_BAD_BODY", "MPUB failed to read message count"))?;
    if count <= 0 || count as usize > (body.len() - 4) / 4 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB invalid message count {count}"),
        ));
    }
    let mut at = 4;
    let mut messages = Vec::with_capacity(count as usize);
    for i in 0..count {
        let size = read_i32(at).ok_or_else(|| {
            ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB failed to read message({i}) body size"),
            )
        })?;
        if size <= 0 {
            return Err(ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB invalid message({i}) body size {size}"),
            ));
        }
        if i64::from(size) > max_msg_size {
            return Err(ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB message too big {size} > {max_msg_size}"),
            ));
        }
        at += 4;
        let end = at + size as usize;
        if end > body.len() {
            return Err(ClientError::fatal(
                "E_BAD_MESSAGE",
                "MPUB failed to read message body",
            ));
        }
        messages.push(body.slice(at..end));
        at = end;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(messages: &[&[u8]]) -> Bytes {
        let mut out = (messages.len() as i32).to_be_bytes().to_vec();
        for m in messages {
            out.extend_from_slice(&(m.len() as i32).to_be_bytes());
            out.extend_from_slice(m);
        }
        Bytes::from(out)
    }

    #[test]
    fn splits_and_validates() {
        let parts = split_messages(body(&[b"a", b"bc"]), 10).unwrap();
        assert_eq!(parts, [Bytes::from_static(b"a"), Bytes::from_static(b"bc")]);
        let too_big = split_messages(body(&[b"a", b"0123456789x"]), 10).unwrap_err();
        assert_eq!(
            too_big.to_string(),
            "E_BAD_MESSAGE MPUB message too big 11 > 10"
        );
        let empty = split_messages(body(&[b""]), 10).unwrap_err();
        assert_eq!(
            empty.to_string(),
            "E_BAD_MESSAGE MPUB invalid message(0) body size 0"
        );
        let zero = split_messages(Bytes::from_static(&[0, 0, 0, 0]), 10).unwrap_err();
        assert_eq!(zero.to_string(), "E_BAD_BODY MPUB invalid message count 0");
        let mut short = body(&[b"abc"]).to_vec();
        short.pop();
        assert!(split_messages(Bytes::from(short), 10).is_err());
    }

    #[test]
    fn a_stalled_body_fails_where_go_would() {
        let stall = |partial: &[u8]| stalled(partial, 10, 100).to_string();
        let full = body(&[b"ab", b"cd"]);
        assert_eq!(
            stall(&full[..3]),
            "E_BAD_BODY MPUB failed to read message count"
        );
        assert_eq!(
            stall(&full[..4]),
            "E_BAD_MESSAGE MPUB failed to read message(0) body size"
        );
        assert_eq!(
            stall(&full[..9]),
            "E_BAD_MESSAGE MPUB failed to read message body"
        );
        assert_eq!(
            stall(&full[..10]),
            "E_BAD_MESSAGE MPUB failed to read message(1) body size"
        );
        assert_eq!(stall(&full), "E_BAD_BODY MPUB failed to read body");
        assert_eq!(
            stall(&[0, 0, 0, 20]),
            "E_BAD_BODY MPUB invalid message count 20"
        );
        assert_eq!(
            stall(&body(&[b"0123456789x"])[..8]),
            "E_BAD_MESSAGE MPUB message too big 11 > 10"
        );
    }
}
