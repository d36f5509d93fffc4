//! `PING`: the nsqd is alive. Once it has identified, this refreshes its last-seen time, which
//! keeps it listed (see `--inactive-producer-timeout`).
//!
//! # Format
//! `PING\n` → `OK`

use std::time::Instant;

use super::Cx;
use crate::lookup_wire::OK;

pub fn exec(cx: &mut Cx<'_>) -> Vec<u8> {
    if let Some(peer) = &cx.session.peer {
        let now = Instant::now();
        let last = peer.touch(now);
        tracing::debug!(since_last = ?now.saturating_duration_since(last), "pinged");
    }
    OK.to_vec()
}
