//! The value stored under each topic's key (schema version 2): the topic's paused flag and its
//! channels, bincode-encoded.

use serde::{Deserialize, Serialize};

use crate::metadata::{ChannelMeta, TopicMeta};

/// A topic's stored state. `channels` is kept sorted by name with no repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    pub paused: bool,
    pub channels: Vec<ChannelRecord>,
}

/// A channel's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelRecord {
    pub name: String,
    pub paused: bool,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl TopicRecord {
    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding bools, strings and vectors into a Vec cannot fail.
        bincode::serde::encode_to_vec(self, config()).unwrap_or_default()
    }

    /// Decodes a stored value; fails with a description when the bytes are not one whole record.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (record, used): (TopicRecord, usize) =
            bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!(
                "{} trailing bytes after the record",
                bytes.len() - used
            ));
        }
        Ok(record)
    }

    /// The position of `channel`, or where it would be inserted.
    pub fn find_channel(&self, channel: &str) -> Result<usize, usize> {
        self.channels
            .binary_search_by(|c| c.name.as_str().cmp(channel))
    }

    /// Adds `channel` (unpaused) unless present.
    pub fn add_channel(&mut self, channel: &str) {
        if let Err(at) = self.find_channel(channel) {
            self.channels.insert(
                at,
                ChannelRecord {
                    name: channel.into(),
                    paused: false,
                },
            );
        }
    }

    /// This record as metadata of the topic `name`.
    pub fn to_meta(&self, name: &str) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            paused: self.paused,
            channels: self
                .channels
                .iter()
                .map(|c| ChannelMeta {
                    name: c.name.clone(),
                    paused: c.paused,
                })
                .collect(),
        }
    }

    /// A record holding exactly `meta`'s flag and channels.
    pub fn from_meta(meta: &TopicMeta) -> Self {
        let mut record = TopicRecord {
            paused: meta.paused,
            channels: Vec::new(),
        };
        record.merge(meta);
        record
    }

    /// Takes `meta`'s paused flags and adds its channels, keeping channels `meta` lacks.
    pub fn merge(&mut self, meta: &TopicMeta) {
        self.paused = meta.paused;
        for channel in &meta.channels {
            match self.find_channel(&channel.name) {
                Ok(at) => self.channels[at].paused = channel.paused,
                Err(at) => self.channels.insert(
                    at,
                    ChannelRecord {
                        name: channel.name.clone(),
                        paused: channel.paused,
                    },
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut record = TopicRecord {
            paused: true,
            channels: vec![],
        };
        record.add_channel("b");
        record.add_channel("a");
        record.add_channel("b");
        assert_eq!(record.channels.len(), 2);
        assert_eq!(record.channels[0].name, "a");
        let bytes = record.encode();
        assert_eq!(TopicRecord::decode(&bytes).unwrap(), record);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TopicRecord::decode(&longer).is_err());
        assert!(TopicRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
