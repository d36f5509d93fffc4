//! `UNREGISTER`: the nsqd no longer has a channel, or a topic (and so none of its channels).
//! The registrations stay, without this producer, so that the topic or channel is still
//! listed; an `#ephemeral` one is removed with its last producer.
//!
//! # Format
//! `UNREGISTER <topic> [<channel>]\n` → `OK`; `E_INVALID` before IDENTIFY or without a topic,
//! `E_BAD_TOPIC`, `E_BAD_CHANNEL`.

use super::{topic_and_channel, CmdResult, Cx};
use crate::lookup_wire::OK;
use crate::nsqlookupd::registration_db::{Category, Registration, WILDCARD};

pub fn exec(cx: &mut Cx<'_>, args: &[&[u8]]) -> CmdResult {
    let peer = cx.session.identified()?;
    let (topic, channel) = topic_and_channel("UNREGISTER", args)?;
    let id = peer.info.id.as_str();
    let mut db = cx.state.db_mut();
    match channel {
        Some(channel) => {
            let registration = Registration::channel(topic, channel);
            if db.remove_producer_dropping_ephemeral(&registration, id).0 {
                tracing::info!(topic, channel, "DB: UNREGISTER channel");
            }
        }
        None => {
            // nsqd unregisters its channels before their topic; any left over go now.
            for registration in db.find_registrations(Category::Channel, topic, WILDCARD) {
                if db.remove_producer(&registration, id).0 {
                    tracing::warn!(
                        topic,
                        channel = %registration.subkey,
                        "unexpected UNREGISTER of a channel with its topic"
                    );
                }
            }
            if db
                .remove_producer_dropping_ephemeral(&Registration::topic(topic), id)
                .0
            {
                tracing::info!(topic, "DB: UNREGISTER topic");
            }
        }
    }
    Ok(OK.to_vec())
}
