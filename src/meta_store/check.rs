//! Checking every record of the store (`rnsq meta check`): counts and problems, changing
//! nothing.

use super::record::TopicRecord;
use super::{MetaStore, StoreError, SCHEMA_VERSION};
use crate::names;

/// What [`MetaStore::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub schema_version: u32,
    pub topics: usize,
    pub paused_topics: usize,
    pub channels: usize,
    pub paused_channels: usize,
    /// One line per problem found; empty when the store is sound.
    pub problems: Vec<String>,
}

impl MetaStore {
    /// Reads every record and reports counts and problems (undecodable records, invalid or
    /// ephemeral names). Changes nothing.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport {
            schema_version: SCHEMA_VERSION,
            ..Default::default()
        };
        for entry in self.topics.iter() {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let bad_name = |n: &str| !names::is_valid_topic_name(n) || names::is_ephemeral(n);
            if bad_name(&name) {
                report
                    .problems
                    .push(format!("topic {name:?}: not a persistable topic name"));
            }
            match TopicRecord::decode(&value) {
                Err(reason) => report.problems.push(format!("topic {name:?}: {reason}")),
                Ok(record) => {
                    report.topics += 1;
                    report.paused_topics += usize::from(record.paused);
                    report.channels += record.channels.len();
                    for channel in &record.channels {
                        report.paused_channels += usize::from(channel.paused);
                        if bad_name(&channel.name) {
                            report.problems.push(format!(
                                "channel {name}/{}: not a persistable channel name",
                                channel.name
                            ));
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}
