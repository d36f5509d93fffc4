//! `MPUB`: publish several messages at once, all or none.
//!
//! # Format
//! `MPUB <topic>\n[4-byte body size][4-byte count]([4-byte size][bytes])*` → `OK`. Every
//! message is validated before any is queued.

use bytes::Bytes;

use super::publish::{publish, topic_param};
use super::{CmdResult, Cx};
use crate::message::Message;
use crate::protocol::{read_body, read_size, ClientError};

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
    let size = read_size(cx.reader)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "MPUB failed to read body size"))?;
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB invalid body size {size}"),
        ));
    }
    let max_body = cx.options.max_body_size;
    if i64::from(size) > max_body {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB body too big {size} > {max_body}"),
        ));
    }
    let body = read_body(cx.reader, size as usize)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "MPUB failed to read body"))?;
    let bodies = split_messages(Bytes::from(body), cx.options.max_msg_size)?;
    let messages = bodies
        .into_iter()
        .map(|b| Message::new(cx.broker.next_id(), b))
        .collect();
    publish(cx, topic, messages, "E_MPUB_FAILED", "MPUB").await
}

/// Splits an MPUB body into message bodies (shared, not copied).
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
}
