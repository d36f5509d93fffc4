//! The broker's [`ChannelSource`] backed by lookupd's HTTP API: `GET /channels?topic=` on every
//! connected lookupd, with a short timeout, answers merged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;

use super::LookupContext;
use crate::broker::ChannelSource;

/// The longest a new topic waits for lookupd's answer.
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct ChannelsReply {
    #[serde(default)]
    channels: Vec<String>,
}

/// Asks the lookupds the peers are connected to.
pub struct LookupChannelSource {
    context: Arc<LookupContext>,
    client: reqwest::Client,
}

impl LookupChannelSource {
    pub fn new(context: Arc<LookupContext>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        LookupChannelSource { context, client }
    }

    async fn ask(&self, address: String, topic: &str) -> Vec<String> {
        let url = format!("http://{address}/channels");
        let reply = self.client.get(url).query(&[("topic", topic)]).send().await;
        match reply {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(body) => serde_json::from_slice::<ChannelsReply>(&body)
                    .map(|r| r.channels)
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            },
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(lookupd = %address, error = %e, "cannot ask lookupd for channels");
                Vec::new()
            }
        }
    }
}

impl ChannelSource for LookupChannelSource {
    fn channels_for<'a>(
        &'a self,
        topic: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async move {
            // All lookupds at once: the slowest one bounds the wait, not their sum.
            let answers = self
                .context
                .http_addresses()
                .into_iter()
                .map(|address| self.ask(address, topic));
            let mut names = BTreeSet::new();
            for answer in join_all(answers).await {
                names.extend(answer);
            }
            names.into_iter().collect()
        })
    }
}
