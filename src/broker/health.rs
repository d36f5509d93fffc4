//! The broker's health as `/ping` reports it: the last metadata change that could not be
//! persisted, else the message logs' disk trouble.

use super::Broker;
use crate::meta_store::StoreError;

impl Broker {
    /// `None` while healthy; else why the last metadata change could not be persisted. Cleared
    /// by the next change that persists.
    pub fn health_problem(&self) -> Option<String> {
        let store = self
            .store_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        store.or_else(|| self.disk_health.problem())
    }

    /// Remembers how the last store write went: a failure until the next success.
    pub(super) fn record_store_result(&self, result: &Result<(), StoreError>) {
        let mut failure = self.store_failure.lock().unwrap_or_else(|p| p.into_inner());
        *failure = result.as_ref().err().map(ToString::to_string);
    }
}
