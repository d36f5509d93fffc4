//! How a metadata change runs: persisted to the store (unless loading or ephemeral), then
//! announced to subscribers, on a task of its own so a caller that goes away cannot leave it
//! half done — a task the broker owns, so shutdown waits for it before the store closes.

use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;

use super::{Broker, BrokerError, ChangeEvent};
use crate::meta_store::Change;

/// The metadata changes running, and whether new ones may start.
#[derive(Debug)]
pub(super) struct Changes {
    /// False once shutdown began. Held while a change is spawned, so each change is either
    /// tracked before the gate closes (and waited for) or refused: none slips in after.
    open: Mutex<bool>,
    tasks: TaskTracker,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            open: Mutex::new(true),
            tasks: TaskTracker::new(),
        }
    }
}

impl Broker {
    /// Tells subscribers about an applied change (nobody while loading).
    pub(super) fn announce(&self, event: ChangeEvent) {
        if !self.is_loading() {
            // No subscriber is not an error: nobody needs telling.
            let _ = self.events.send(event);
        }
    }

    /// Writes `change` to the store (flushed) unless it concerns an ephemeral name or boot
    /// replay is running.
    ///
    /// # Errors
    /// [`BrokerError::Store`] when the store refuses it: nothing was written.
    pub(super) async fn persist(&self, ephemeral: bool, change: Change) -> Result<(), BrokerError> {
        if ephemeral || self.is_loading() {
            return Ok(());
        }
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.apply(&change))
            .await
            .map_err(|_| BrokerError::Exiting)?;
        self.record_store_result(&result);
        Ok(result?)
    }

    /// Runs the change `op` on a task the broker owns, so it completes even if the caller is
    /// dropped, and [`Broker::stop_changes`] waits for it.
    ///
    /// # Errors
    /// [`BrokerError::Exiting`] once shutdown began (`op` never runs), or if its task
    /// panicked; else what `op` returns.
    pub(super) async fn run_detached<T, F>(self: &Arc<Self>, op: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, BrokerError>> + Send + 'static,
    {
        let task = {
            let open = self.changes.open.lock().unwrap_or_else(|p| p.into_inner());
            if !*open {
                return Err(BrokerError::Exiting);
            }
            self.changes.tasks.spawn(op)
        };
        task.await.map_err(|_| BrokerError::Exiting)?
    }

    /// Shutdown's first step for the broker: from now every metadata change fails with
    /// [`BrokerError::Exiting`] without running; returns once every change already running
    /// has finished (persisted and applied, or failed), whether or not its caller still waits.
    /// Idempotent.
    pub async fn stop_changes(&self) {
        *self.changes.open.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.changes.tasks.close();
        self.changes.tasks.wait().await;
    }
}
