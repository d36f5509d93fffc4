//! `PUB`: publish one message.
//!
//! # Format
//! `PUB <topic>\n[4-byte size][body]` → `OK`. The topic is created on first use.

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::{CmdResult, Cx};
use crate::message::Message;
use crate::names;
use crate::protocol::{go_quote, read_body, read_size, ClientError, OK};

/// Validates `PUB`-style parameters: the topic name (`E_BAD_TOPIC`).
pub fn topic_param<'a>(
    command: &str,
    params: &[&'a [u8]],
    needed: usize,
) -> Result<&'a str, ClientError> {
    if params.len() < needed {
        return Err(ClientError::fatal(
            "E_INVALID",
            format!("{command} insufficient number of parameters"),
        ));
    }
    let name = std::str::from_utf8(params[1])
        .ok()
        .filter(|n| names::is_valid_topic_name(n));
    name.ok_or_else(|| {
        ClientError::fatal(
            "E_BAD_TOPIC",
            format!("{command} topic name {} is not valid", go_quote(params[1])),
        )
    })
}

/// Reads one sized message body as PUB and DPUB do: a size in 1..=`max_msg_size`, else
/// `E_BAD_MESSAGE` (as also when the stream ends early). Nothing is reserved before the size
/// is checked.
pub async fn read_message_body(
    reader: &mut (impl AsyncRead + Unpin),
    command: &str,
    max_msg_size: i64,
) -> Result<Bytes, ClientError> {
    let size = read_size(reader).await.map_err(|_| {
        ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("{command} failed to read message body size"),
        )
    })?;
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("{command} invalid message body size {size}"),
        ));
    }
    if i64::from(size) > max_msg_size {
        return Err(ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("{command} message too big {size} > {max_msg_size}"),
        ));
    }
    let body = read_body(reader, size as usize).await.map_err(|_| {
        ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("{command} failed to read message body"),
        )
    })?;
    Ok(Bytes::from(body))
}

/// Queues `messages` on `topic`, creating it if needed; `code` is the failure's error code.
pub(super) async fn publish(
    cx: &mut Cx<'_>,
    topic: &str,
    messages: Vec<Message>,
    code: &'static str,
    command: &str,
) -> CmdResult {
    let topic = cx
        .broker
        .get_or_create_topic(topic)
        .await
        .map_err(|e| ClientError::fatal(code, format!("{command} failed {e}")))?;
    let count = messages.len() as u64;
    topic
        .publish(messages)
        .await
        .map_err(|e| ClientError::fatal(code, format!("{command} failed {e}")))?;
    cx.session.info.published(topic.name(), count);
    Ok(Some(OK.to_vec()))
}

pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let topic = topic_param("PUB", params, 2)?;
    let body = read_message_body(cx.reader, "PUB", cx.options.max_msg_size).await?;
    super::auth::check(cx, "PUB", topic, "").await?;
    let message = Message::new(cx.broker.next_id(), body);
    publish(cx, topic, vec![message], "E_PUB_FAILED", "PUB").await
}
