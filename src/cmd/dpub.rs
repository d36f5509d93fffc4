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
    let delay_ms = delay_param(params[2], cx.options.max_req_timeout.as_millis() as u64)?;
    let body = read_message_body(cx.reader, "DPUB", cx.options.max_msg_size).await?;
    super::auth::check(cx, "DPUB", topic, "").await?;
    let mut message = Message::new(cx.broker.next_id(), body);
    // Bounded by max-req-timeout above; a limit beyond u32 milliseconds (49 days) saturates.
    message.deferred_ms = u32::try_from(delay_ms).unwrap_or(u32::MAX);
    publish(cx, topic, vec![message], "E_DPUB_FAILED", "DPUB").await
}

/// DPUB's delay parameter: decimal milliseconds in 0..=`max_ms` (else `E_INVALID`).
pub fn delay_param(param: &[u8], max_ms: u64) -> Result<u64, ClientError> {
    let delay_ms = parse_decimal(param).ok_or_else(|| {
        ClientError::fatal(
            "E_INVALID",
            format!(
                "DPUB could not parse timeout {}",
                String::from_utf8_lossy(param)
            ),
        )
    })?;
    if delay_ms > max_ms {
        return Err(ClientError::fatal(
            "E_INVALID",
            format!("DPUB timeout {delay_ms} out of range 0-{max_ms}"),
        ));
    }
    Ok(delay_ms)
}
