//! The broker's options while it runs: read by every server, changed at runtime by
//! `PUT /config/:opt` (the lookupd addresses and the log level), with a notification that the
//! lookup loop follows.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::NsqdOptions;
use crate::options::LogLevel;

/// Applies a new log level to the process's logger.
pub type LogLevelHook = Box<dyn Fn(LogLevel) + Send + Sync>;

/// Shared, swappable options.
pub struct LiveOptions {
    current: RwLock<Arc<NsqdOptions>>,
    changed: watch::Sender<Arc<NsqdOptions>>,
    on_log_level: LogLevelHook,
}

impl LiveOptions {
    /// Wraps the resolved options; `on_log_level` is called whenever the level changes.
    pub fn new(options: NsqdOptions, on_log_level: LogLevelHook) -> Self {
        let options = Arc::new(options);
        let (changed, _) = watch::channel(options.clone());
        LiveOptions {
            current: RwLock::new(options),
            changed,
            on_log_level,
        }
    }

    /// The options in force now.
    pub fn get(&self) -> Arc<NsqdOptions> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the options with `edit` applied to a copy, then notifies watchers.
    pub fn update(&self, edit: impl FnOnce(&mut NsqdOptions)) -> Arc<NsqdOptions> {
        let next = {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut next = (**current).clone();
            edit(&mut next);
            if next.log_level != current.log_level {
                (self.on_log_level)(next.log_level);
            }
            let next = Arc::new(next);
            *current = next.clone();
            next
        };
        self.changed.send_replace(next.clone());
        next
    }

    /// A receiver that sees every later update.
    pub fn watch(&self) -> watch::Receiver<Arc<NsqdOptions>> {
        self.changed.subscribe()
    }
}
