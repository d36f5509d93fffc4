//! Making a topic's log durable: the fsync of a durable publisher (group commit,
//! [`TopicLog::wait_durable`]) and the syncer task fsyncing every `--sync-every` messages or
//! `--sync-timeout` ([`TopicLog::run_syncer`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{AppendError, TopicLog};
use crate::queue::segment_log::{parent_dir, sync_dir};

/// Fsyncs of one log that may run at once.
pub(super) const SYNCS_IN_FLIGHT: usize = 2;

/// What is durable, as the syncs left it; watched by durable publishers.
#[derive(Debug, Clone, Default)]
pub(super) struct SyncState {
    /// Every message numbered below this is durable.
    pub synced: u64,
    /// The last failed fsync: the messages it was for (from, to) and why.
    pub failure: Option<(u64, u64, String)>,
}

impl TopicLog {
    /// Waits until every message numbered in `from..to` is fsynced.
    ///
    /// Group commit: a publisher not covered by an fsync already started starts one itself
    /// (at most `SYNCS_IN_FLIGHT` (2) at once), and that fsync covers every message written
    /// before it; the others wait for it. No task hop stands between a publisher and its
    /// fsync.
    pub async fn wait_durable(self: &Arc<Self>, from: u64, to: u64) -> Result<(), AppendError> {
        let mut state = self.synced.subscribe();
        loop {
            {
                let s = state.borrow_and_update();
                if let Some((failed_from, failed_to, reason)) = &s.failure {
                    if from < *failed_to && to > *failed_from {
                        return Err(AppendError(reason.clone()));
                    }
                }
                if s.synced >= to {
                    return Ok(());
                }
            }
            let covered = self.sync_started.load(Ordering::Acquire) >= to;
            if !covered && self.syncs_running.load(Ordering::Acquire) < SYNCS_IN_FLIGHT {
                let _ = self.sync_now().await;
                continue;
            }
            if state.changed().await.is_err() {
                return Err(AppendError("the message log closed".into()));
            }
        }
    }

    /// Fsyncs everything appended so far (a no-op when nothing is new).
    pub async fn sync_now(self: &Arc<Self>) -> Result<(), AppendError> {
        let (handle, target, from) = {
            let mut inner = self.inner();
            // Messages below `from` are covered by an fsync already started.
            let from = self.sync_started.load(Ordering::Acquire);
            let target = inner.end.seq;
            inner.unsynced = 0;
            inner.unsynced_since = None;
            let handle = match &inner.disk {
                Some(disk) if target > from => disk.sync_handle(),
                _ => return Ok(()),
            };
            self.sync_started.store(target, Ordering::Release);
            (handle, target, from)
        };
        let file = match handle {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(()),
            Err(e) => return self.synced_or_failed(Err(e.to_string()), from, target),
        };
        self.syncs_running.fetch_add(1, Ordering::AcqRel);
        // The fsync and its bookkeeping run together on the blocking thread, so a caller
        // that goes away cannot leave waiters without an answer.
        let log = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = log
                .sync_entries()
                .and_then(|()| file.sync_data().map_err(|e| format!("fsync: {e}")));
            log.syncs_running.fetch_sub(1, Ordering::AcqRel);
            log.synced_or_failed(result, from, target)
        })
        .await
        .map_err(|e| AppendError(e.to_string()))?
    }

    /// Makes durable, once per process, the directory entries this log's records are reached
    /// through: the segments' (in the topic directory), the topic directory's (in the queue
    /// root) and the queue root's (in the data path).
    ///
    /// Making those directories does not fsync their parents (a topic's directory is made at
    /// its first use, and most topics never hold a message); a new segment's entry is fsynced
    /// when it is created. This runs inside the log's first fsync in this process, so before
    /// any durable `OK` and before any message counts as fsynced — also when a process that
    /// crashed made the directories and this one only appends.
    pub(super) fn sync_entries(&self) -> Result<(), String> {
        if self.entries_synced.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let queue_root = parent_dir(dir);
        for entries in [dir.as_path(), queue_root, parent_dir(queue_root)] {
            sync_dir(entries).map_err(|e| format!("fsync: {e}"))?;
        }
        self.entries_synced.store(true, Ordering::Release);
        Ok(())
    }

    /// Records how the fsync of messages `from..target` ended, telling every waiter.
    fn synced_or_failed(
        &self,
        result: Result<(), String>,
        from: u64,
        target: u64,
    ) -> Result<(), AppendError> {
        match result {
            Ok(()) => {
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .fsynced_messages
                    .fetch_add(target - from, Ordering::Relaxed);
                self.synced.send_modify(|s| s.synced = s.synced.max(target));
                self.health.recovered();
                Ok(())
            }
            Err(reason) => {
                tracing::error!(error = %reason, "cannot fsync the message log");
                self.health.failed(reason.clone());
                self.synced
                    .send_modify(|s| s.failure = Some((from, target, reason.clone())));
                Err(AppendError(reason))
            }
        }
    }

    /// Fsyncs when asked (durable publishers), after `--sync-every` messages, or
    /// `--sync-timeout` after the first unsynced one; a last time when `stop` is cancelled.
    ///
    /// Up to `SYNCS_IN_FLIGHT` (2) fsyncs overlap: a publisher arriving while one runs starts
    /// the next at once rather than wait a whole fsync for its turn. Each covers everything
    /// written before it started, so the highest finished one says what is durable.
    pub async fn run_syncer(self: Arc<Self>, stop: CancellationToken) {
        if self.dir.is_none() {
            return;
        }
        let mut running = tokio::task::JoinSet::new();
        loop {
            let since = self.inner().unsynced_since;
            let timeout = async {
                match since {
                    Some(at) => tokio::time::sleep_until(at + self.settings.sync_timeout).await,
                    None => std::future::pending().await,
                }
            };
            let room = running.len() < SYNCS_IN_FLIGHT;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.sync_wanted.notified(), if room => {}
                _ = timeout, if room => {}
                Some(_) = running.join_next(), if !running.is_empty() => continue,
            }
            let log = self.clone();
            // A failure is reported to waiters and /ping; the next round tries again.
            running.spawn(async move {
                let _ = log.sync_now().await;
            });
        }
        while running.join_next().await.is_some() {}
        let _ = self.sync_now().await;
    }
}
