//! `REQ`: give a message back, to be delivered again now (0) or after a delay.
//!
//! # Format
//! `REQ <message_id> <timeout_ms>\n` → nothing. The timeout is clamped to 0..max-req-timeout;
//! `E_REQ_FAILED` (not fatal) if the message is not in flight to this client.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{id_text, message_id, state, subscription, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::protocol::{parse_decimal, ClientError};

pub fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let state = state(cx);
    if state != client_state::SUBSCRIBED && state != client_state::CLOSING {
        return Err(wrong_state("REQ"));
    }
    if params.len() < 3 {
        return Err(ClientError::fatal(
            "E_INVALID",
            "REQ insufficient number of params",
        ));
    }
    let id = message_id(params[1])?;
    let timeout_ms = parse_decimal(params[2]).ok_or_else(|| {
        ClientError::fatal(
            "E_INVALID",
            format!(
                "REQ could not parse timeout {}",
                String::from_utf8_lossy(params[2])
            ),
        )
    })?;
    let delay = Duration::from_millis(timeout_ms).min(cx.options.max_req_timeout);
    let (_, channel) = subscription(cx).ok_or_else(|| wrong_state("REQ"))?;
    channel
        .requeue(cx.session.info.id, &id, delay)
        .map_err(|e| {
            ClientError::non_fatal("E_REQ_FAILED", format!("REQ {} failed {e}", id_text(&id)))
        })?;
    cx.session
        .info
        .requeue_count
        .fetch_add(1, Ordering::Relaxed);
    cx.session.info.left_flight();
    Ok(None)
}
