//! Whether message storage is working: set by the first failed write or fsync, cleared by the
//! next that succeeds, and reported by `/ping` and `/stats`.

use std::sync::Mutex;

/// Shared by every topic log of a broker.
#[derive(Debug, Default)]
pub struct DiskHealth {
    problem: Mutex<Option<String>>,
}

impl DiskHealth {
    fn problem_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.problem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write or fsync failed, for `reason`.
    pub fn failed(&self, reason: String) {
        *self.problem_slot() = Some(reason);
    }

    /// A write and its fsync succeeded.
    pub fn recovered(&self) {
        let mut slot = self.problem_slot();
        if slot.is_some() {
            tracing::info!("message storage is writable again");
            *slot = None;
        }
    }

    /// `None` while healthy; else the last failure.
    pub fn problem(&self) -> Option<String> {
        self.problem_slot().clone()
    }
}
