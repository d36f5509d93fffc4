//! Keeps `<data-path>/nsqd.dat` current: after any change event it waits a moment so that a
//! burst of changes costs one write, then writes a fresh snapshot of the store; and it writes
//! once more when it stops.
//!
//! The wait grows with the cost of a write (nine times the last write, at least
//! [`MIN_SETTLE`]) so that under a steady stream of changes the rewrites of a large file take
//! at most a tenth of the time, and it is capped so that the file is current within
//! [`DEADLINE`] of the last change while one write takes less than a tenth of that.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::meta_store::MetaStore;
use crate::nsqd_dat;

/// The shortest time the keeper gathers changes before writing.
pub const MIN_SETTLE: Duration = Duration::from_millis(100);
/// How soon after the last change the file should be current.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// How long it waits before retrying a failed write.
const RETRY: Duration = Duration::from_millis(500);

/// Writes `nsqd.dat` from the store now.
pub async fn write_now(store: Arc<MetaStore>, dir: PathBuf) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let metadata = store.snapshot().map_err(|e| e.to_string())?;
        nsqd_dat::write_atomic(&dir, &metadata)
            .map_err(|e| format!("{}: {e}", dir.join(nsqd_dat::FILE_NAME).display()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs until `shutdown`, then writes the file a last time.
pub async fn run(broker: Arc<Broker>, dir: PathBuf, shutdown: CancellationToken) {
    let mut events = broker.subscribe();
    let mut dirty = false;
    let mut last_write = Duration::ZERO;
    loop {
        if dirty {
            let settle = (last_write * 9)
                .max(MIN_SETTLE)
                .min(DEADLINE.saturating_sub(last_write));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(settle) => {}
            }
            // Everything that arrived while settling is covered by the snapshot below.
            while !matches!(
                events.try_recv(),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty)
            ) {}
            let started = std::time::Instant::now();
            match write_now(broker.store().clone(), dir.clone()).await {
                Ok(()) => {
                    dirty = false;
                    last_write = started.elapsed();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write nsqd.dat; will retry");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = events.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => break,
            },
        }
    }
    if let Err(e) = write_now(broker.store().clone(), dir).await {
        tracing::error!(error = %e, "cannot write nsqd.dat at shutdown");
    }
}
