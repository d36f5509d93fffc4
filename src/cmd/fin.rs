//! `FIN`: a message is done.
//!
//! # Format
//! `FIN <message_id>\n` → nothing; `E_FIN_FAILED` (not fatal) if it is not in flight to this
//! client.

use std::sync::atomic::Ordering;

use super::{id_text, message_id, state, subscription, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::protocol::ClientError;

pub fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let state = state(cx);
    if state != client_state::SUBSCRIBED && state != client_state::CLOSING {
        return Err(wrong_state("FIN"));
    }
    let param = params
        .get(1)
        .ok_or_else(|| ClientError::fatal("E_INVALID", "FIN insufficient number of params"))?;
    let id = message_id(param)?;
    let (_, channel) = subscription(cx).ok_or_else(|| wrong_state("FIN"))?;
    channel.finish(cx.session.info.id, &id).map_err(|e| {
        ClientError::non_fatal("E_FIN_FAILED", format!("FIN {} failed {e}", id_text(&id)))
    })?;
    cx.session.info.finish_count.fetch_add(1, Ordering::Relaxed);
    cx.session.info.left_flight();
    Ok(None)
}
