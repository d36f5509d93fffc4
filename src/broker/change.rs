//! How a metadata change runs: persisted to the store (unless loading or ephemeral), then
//! announced to subscribers, on a task of its own so a caller that goes away cannot leave it
//! half done.

use std::sync::Arc;

use super::{Broker, BrokerError, ChangeEvent};
use crate::meta_store::Change;

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

    /// Runs `op` on its own task, so the change completes even if the caller is dropped.
    pub(super) async fn run_detached<T, F>(self: &Arc<Self>, op: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, BrokerError>> + Send + 'static,
    {
        tokio::spawn(op).await.map_err(|_| BrokerError::Exiting)?
    }
}
