//! `RDY`: how many messages the client may hold in flight at once.
//!
//! # Format
//! `RDY <count>\n` (count defaults to 1) → nothing. Ignored after CLS.

use std::sync::atomic::Ordering;

use super::{state, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::protocol::{parse_decimal, ClientError};

pub fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    let state = state(cx);
    if state == client_state::CLOSING {
        return Ok(None);
    }
    if state != client_state::SUBSCRIBED {
        return Err(wrong_state("RDY"));
    }
    let count = match params.get(1) {
        None => 1,
        Some(text) => parse_decimal(text).ok_or_else(|| {
            ClientError::fatal(
                "E_INVALID",
                format!(
                    "RDY could not parse count {}",
                    String::from_utf8_lossy(text)
                ),
            )
        })?,
    };
    let max = cx.options.max_rdy_count;
    if count > max as u64 {
        return Err(ClientError::fatal(
            "E_INVALID",
            format!("RDY count {count} out of range 0-{max}"),
        ));
    }
    cx.session
        .info
        .ready_count
        .store(count as i64, Ordering::Release);
    cx.session.info.wake.notify_one();
    Ok(None)
}
