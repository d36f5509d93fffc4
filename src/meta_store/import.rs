//! Importing a whole metadata set (a Go `nsqd.dat`, or `rnsq meta import`) into the store in
//! one transaction.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::record::TopicRecord;
use super::{MetaStore, StoreError, BOOTSTRAPPED_KEY};
use crate::metadata::Metadata;

/// How [`MetaStore::import`] treats what the store has and the imported metadata lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Keep it: topics and channels are added, paused flags taken from the import.
    Merge,
    /// Remove it: afterwards the store holds exactly the imported metadata.
    Replace,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub topics_created: usize,
    pub channels_created: usize,
    pub topics_removed: usize,
    pub channels_removed: usize,
    pub topics_written: usize,
}

impl MetaStore {
    /// Applies `import` in one transaction and flushes it: each topic and channel it lists is
    /// created if missing and takes the listed paused flags; with [`ImportMode::Replace`],
    /// topics and channels it lacks are removed. Either all of it is applied or none. The
    /// store is marked bootstrapped in the same transaction (a first boot imports nothing
    /// over it).
    pub fn import(&self, import: &Metadata, mode: ImportMode) -> Result<ImportSummary, StoreError> {
        self.import_with_progress(import, mode, &|_| {})
    }

    /// [`MetaStore::import`], calling `progress` with the number of topics prepared so far.
    pub fn import_with_progress(
        &self,
        import: &Metadata,
        mode: ImportMode,
        progress: &dyn Fn(usize),
    ) -> Result<ImportSummary, StoreError> {
        let summary = self.write_import(import, mode, progress)?;
        self.flush()?;
        Ok(summary)
    }

    fn write_import(
        &self,
        import: &Metadata,
        mode: ImportMode,
        progress: &dyn Fn(usize),
    ) -> Result<ImportSummary, StoreError> {
        let _writer = self.lock_writer();
        // The writer lock keeps other writers out between this read and the transaction.
        let existing: BTreeMap<String, TopicRecord> = self.read_records()?.into_iter().collect();
        let mut summary = ImportSummary::default();
        let mut writes: Vec<(String, Option<TopicRecord>)> = Vec::new();
        for (done, topic) in import.topics.iter().enumerate() {
            if done % 1024 == 0 {
                progress(done);
            }
            let old = existing.get(&topic.name);
            let new = match (old, mode) {
                (Some(old), ImportMode::Merge) => {
                    let mut record = old.clone();
                    record.merge(topic);
                    record
                }
                _ => TopicRecord::from_meta(topic),
            };
            let old_channels: Vec<&str> = old
                .map(|r| r.channels.iter().map(|c| c.name.as_str()).collect())
                .unwrap_or_default();
            summary.channels_created += new
                .channels
                .iter()
                .filter(|c| !old_channels.contains(&c.name.as_str()))
                .count();
            summary.channels_removed += old_channels
                .iter()
                .filter(|c| new.find_channel(c).is_err())
                .count();
            if old.is_none() {
                summary.topics_created += 1;
            }
            if old != Some(&new) {
                writes.push((topic.name.clone(), Some(new)));
            }
        }
        if mode == ImportMode::Replace {
            for (name, record) in &existing {
                if import.topic(name).is_none() {
                    summary.topics_removed += 1;
                    summary.channels_removed += record.channels.len();
                    writes.push((name.clone(), None));
                }
            }
        }
        progress(import.topics.len());
        summary.topics_written = writes.len();
        (&self.topics, &self.meta).transaction(|(topics, meta)| {
            for (name, record) in &writes {
                match record {
                    Some(record) => topics.insert(name.as_bytes(), record.encode())?,
                    None => topics.remove(name.as_bytes())?,
                };
            }
            meta.insert(BOOTSTRAPPED_KEY, &[1u8])?;
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        if !writes.is_empty() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(summary)
    }
}
