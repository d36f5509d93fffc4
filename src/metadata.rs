//! The metadata a broker keeps across restarts: its topics, their channels and both paused
//! flags. This is the one shape shared by the store, the loader, `nsqd.dat` and `rnsq meta`.
//!
//! Ephemeral names never appear here: they are not persisted.

use std::collections::BTreeMap;

/// Every persisted topic, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub topics: Vec<TopicMeta>,
}

/// One topic with its channels, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub paused: bool,
    pub channels: Vec<ChannelMeta>,
}

/// One channel of a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMeta {
    pub name: String,
    pub paused: bool,
}

impl Metadata {
    /// Builds metadata from topics in any order, merging repeated names: a repeated topic takes
    /// the last paused flag seen and the union of the channels (a repeated channel, the last
    /// flag). The result is sorted.
    pub fn from_topics(topics: impl IntoIterator<Item = TopicMeta>) -> Self {
        let mut merged: BTreeMap<String, (bool, BTreeMap<String, bool>)> = BTreeMap::new();
        for topic in topics {
            let entry = merged.entry(topic.name).or_default();
            entry.0 = topic.paused;
            for channel in topic.channels {
                entry.1.insert(channel.name, channel.paused);
            }
        }
        let topics = merged
            .into_iter()
            .map(|(name, (paused, channels))| TopicMeta {
                name,
                paused,
                channels: channels
                    .into_iter()
                    .map(|(name, paused)| ChannelMeta { name, paused })
                    .collect(),
            })
            .collect();
        Metadata { topics }
    }

    /// The number of channels over all topics.
    pub fn channel_count(&self) -> usize {
        self.topics.iter().map(|t| t.channels.len()).sum()
    }

    /// The topic called `name`, if present.
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.topics[i])
    }
}

impl TopicMeta {
    /// The channel called `name`, if present.
    pub fn channel(&self, name: &str) -> Option<&ChannelMeta> {
        self.channels.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, paused: bool, channels: &[(&str, bool)]) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            paused,
            channels: channels
                .iter()
                .map(|(n, p)| ChannelMeta {
                    name: (*n).into(),
                    paused: *p,
                })
                .collect(),
        }
    }

    #[test]
    fn from_topics_sorts_and_merges_repeats() {
        let meta = Metadata::from_topics([
            topic("b", false, &[("z", false), ("a", true)]),
            topic("a", false, &[]),
            topic("b", true, &[("z", true)]),
        ]);
        assert_eq!(
            meta.topics,
            vec![
                topic("a", false, &[]),
                topic("b", true, &[("a", true), ("z", true)])
            ]
        );
        assert_eq!(meta.channel_count(), 2);
        assert!(meta.topic("b").and_then(|t| t.channel("a")).is_some());
        assert!(meta.topic("c").is_none());
    }
}
