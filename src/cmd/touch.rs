//! `TOUCH`: restart a message's in-flight timeout (capped at delivery + max-msg-timeout).
//!
//! # Format
//! `TOUCH <message_id>\n` → nothing; `E_TOUCH_FAILED` (not fatal) if it is not in flight to
//! this client.

use super::{id_text, message_id, state, subscription, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::protocol::ClientError;

pub fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let state = state(cx);
    if state != client_state::SUBSCRIBED && state != client_state::CLOSING {
        return Err(wrong_state("TOUCH"));
    }
    let param = params
        .get(1)
        .ok_or_else(|| ClientError::fatal("E_INVALID", "TOUCH insufficient number of params"))?;
    let id = message_id(param)?;
    let (_, channel) = subscription(cx).ok_or_else(|| wrong_state("TOUCH"))?;
    let timeout = cx.session.settings().msg_timeout;
    channel
        .touch(cx.session.info.id, &id, timeout, cx.options.max_msg_timeout)
        .map_err(|e| {
            ClientError::non_fatal(
                "E_TOUCH_FAILED",
                format!("TOUCH {} failed {e}", id_text(&id)),
            )
        })?;
    Ok(None)
}
