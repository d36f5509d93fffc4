//! `REGISTER`: the nsqd has a topic, or a channel of a topic (which registers the topic too).
//!
//! # Format
//! `REGISTER <topic> [<channel>]\n` → `OK`; `E_INVALID` before IDENTIFY or without a topic,
//! `E_BAD_TOPIC`, `E_BAD_CHANNEL`.

use super::{topic_and_channel, CmdResult, Cx};
use crate::lookup_wire::OK;
use crate::nsqlookupd::registration_db::Registration;

pub fn exec(cx: &mut Cx<'_>, args: &[&[u8]]) -> CmdResult {
    let peer = cx.session.identified()?;
    let (topic, channel) = topic_and_channel("REGISTER", args)?;
    let mut db = cx.state.db_mut();
    if let Some(channel) = channel {
        if db.add_producer(Registration::channel(topic, channel), &peer) {
            tracing::info!(topic, channel, "DB: REGISTER channel");
        }
    }
    if db.add_producer(Registration::topic(topic), &peer) {
        tracing::info!(topic, "DB: REGISTER topic");
    }
    Ok(OK.to_vec())
}
