//! `DPUB`: publish one message to be delivered after a delay.
//!
//! # Format
//! `DPUB <topic> <defer_ms>\n[4-byte size][body]` → `OK`; the delay is 0..=max-req-timeout.

use super::publish::{publish, read_message_body, topic_param};
use super::{CmdResult, Cx};
use crate::message::Message;
use crate::protocol::{parse_decimal, ClientError};

pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let topic = topic_param("DPUB", params, 3)?;
    let delay_ms = parse_decimal(params[2]).ok_or_else(|| {
        ClientError::fatal(
            "E_INVALID",
            format!(
                "DPUB could not parse timeout {}",
                String::from_utf8_lossy(params[2])
            ),
        )
    })?;
    let max_ms = cx.options.max_req_timeout.as_millis() as u64;
    if delay_ms > max_ms {
        return Err(ClientError::fatal(
            "E_INVALID",
            format!("DPUB timeout {delay_ms} out of range 0-{max_ms}"),
        ));
    }
    let body = read_message_body(cx, "DPUB").await?;
    super::auth::check(cx, "DPUB", topic, "").await?;
    let mut message = Message::new(cx.broker.next_id(), body);
    // Bounded by max-req-timeout above; a limit beyond u32 milliseconds (49 days) saturates.
    message.deferred_ms = u32::try_from(delay_ms).unwrap_or(u32::MAX);
    publish(cx, topic, vec![message], "E_DPUB_FAILED", "DPUB").await
}
