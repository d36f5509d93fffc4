//! Keeps `<data-path>/nsqd.dat` current: after any change event it waits a moment so that a
//! burst of changes costs one write, then writes a fresh snapshot of the store; and it writes
//! once more when it stops. Written at most [`SETTLE`] plus one write's time after the last
//! change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::meta_store::MetaStore;
use crate::nsqd_dat;

/// How long the keeper gathers changes before writing.
pub const SETTLE: Duration = Duration::from_millis(100);
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
    loop {
        if dirty {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(SETTLE) => {}
            }
            // Everything that arrived while settling is covered by the snapshot below.
            while !matches!(
                events.try_recv(),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty)
            ) {}
            match write_now(broker.store().clone(), dir.clone()).await {
                Ok(()) => dirty = false,
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
