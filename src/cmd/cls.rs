//! `CLS`: the client is closing: no more messages are sent (RDY is ignored from now on); the
//! client finishes what it holds and closes the socket.
//!
//! # Format
//! `CLS\n` → `CLOSE_WAIT`

use std::sync::atomic::Ordering;

use super::{state, wrong_state, CmdResult, Cx};
use crate::broker::client_state;

pub fn exec(cx: &mut Cx<'_>, _params: &[&[u8]]) -> CmdResult {
    if state(cx) != client_state::SUBSCRIBED {
        return Err(wrong_state("CLS"));
    }
    cx.session.info.ready_count.store(0, Ordering::Release);
    cx.session
        .info
        .state
        .store(client_state::CLOSING, Ordering::Release);
    cx.session.info.wake.notify_one();
    Ok(Some(b"CLOSE_WAIT".to_vec()))
}
