//! A topic's pump or a channel's timer: a background task spawned on the broker's tracker the
//! first time it is needed, not when the topic or channel is made — a broker that restores
//! 100,000 idle topics at boot should not start 300,000 tasks.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where and how lazy tasks run: the broker's tracker, stopped by its shutdown token.
#[derive(Clone, Debug)]
pub(crate) struct Spawner {
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// One task, started at most once.
#[derive(Debug)]
pub(crate) struct LazyTask {
    started: AtomicBool,
    spawner: Spawner,
}

impl LazyTask {
    pub fn new(spawner: Spawner) -> Self {
        LazyTask {
            started: AtomicBool::new(false),
            spawner,
        }
    }

    /// Starts the task `make` builds (given the shutdown token), unless it already runs.
    pub fn ensure<F>(&self, make: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.spawner
            .tasks
            .spawn(make(self.spawner.shutdown.clone()));
    }
}
