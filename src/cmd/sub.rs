//! `SUB`: subscribe to a channel of a topic (both created on first use). Delivery starts when
//! the client sends RDY.
//!
//! # Format
//! `SUB <topic> <channel>\n` → `OK`

use std::sync::atomic::Ordering;

use super::{state, wrong_state, CmdResult, Cx};
use crate::broker::client_state;
use crate::names;
use crate::protocol::{go_quote, ClientError, OK};

pub async fn exec(cx: &mut Cx<'_>, params: &[&[u8]]) -> CmdResult {
    if state(cx) != client_state::INIT {
        return Err(wrong_state("SUB"));
    }
    if cx.session.settings().heartbeat_interval.is_none() {
        return Err(ClientError::fatal(
            "E_INVALID",
            "cannot SUB with heartbeats disabled",
        ));
    }
    if params.len() < 3 {
        return Err(ClientError::fatal(
            "E_INVALID",
            "SUB insufficient number of parameters",
        ));
    }
    let topic_name = std::str::from_utf8(params[1])
        .ok()
        .filter(|n| names::is_valid_topic_name(n))
        .ok_or_else(|| {
            ClientError::fatal(
                "E_BAD_TOPIC",
                format!("SUB topic name {} is not valid", go_quote(params[1])),
            )
        })?;
    let channel_name = std::str::from_utf8(params[2])
        .ok()
        .filter(|n| names::is_valid_channel_name(n))
        .ok_or_else(|| {
            ClientError::fatal(
                "E_BAD_CHANNEL",
                format!("SUB channel name {} is not valid", go_quote(params[2])),
            )
        })?;
    super::auth::check(cx, "SUB", topic_name, channel_name).await?;
    let failed = |e: crate::broker::BrokerError| {
        ClientError::fatal("E_SUB_FAILED", format!("SUB failed {e}"))
    };
    // A topic or channel deleted between lookup and subscription is created again.
    for _ in 0..3 {
        let topic = cx
            .broker
            .get_or_create_topic(topic_name)
            .await
            .map_err(failed)?;
        let channel = match cx.broker.get_or_create_channel(&topic, channel_name).await {
            Ok(channel) => channel,
            Err(crate::broker::BrokerError::TopicNotFound(_)) => continue,
            Err(e) => return Err(failed(e)),
        };
        let max_consumers = cx.options.max_channel_consumers;
        if max_consumers > 0 && channel.client_count() >= max_consumers as usize {
            return Err(ClientError::fatal(
                "E_SUB_FAILED",
                format!("SUB failed consumers for {topic_name}:{channel_name} exceeds limit of {max_consumers}"),
            ));
        }
        channel.add_client(cx.session.info.clone());
        if channel.is_deleted() {
            channel.remove_client(cx.session.info.id);
            continue;
        }
        cx.session
            .info
            .state
            .store(client_state::SUBSCRIBED, Ordering::Release);
        let _ = cx.session.subscription.set((topic, channel));
        cx.session.changed.notify_one();
        return Ok(Some(OK.to_vec()));
    }
    Err(ClientError::fatal(
        "E_SUB_FAILED",
        "SUB failed: channel is exiting",
    ))
}
