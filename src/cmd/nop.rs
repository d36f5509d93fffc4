//! `NOP`: does nothing, answers nothing (clients send it in reply to heartbeats).
//!
//! # Format
//! `NOP\n`

use super::{CmdResult, Cx};

pub fn exec(_cx: &mut Cx<'_>, _params: &[&[u8]]) -> CmdResult {
    Ok(None)
}
