//! The topics the broker knows, and its connected clients.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use super::{client, Broker, ClientInfo, Topic};

impl Broker {
    /// Registers a connected client (for /stats producers).
    pub fn add_client(&self, client: Arc<ClientInfo>) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.id, client);
    }

    /// Forgets a disconnected client.
    pub fn remove_client(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Every connected client, in connection order.
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        client::sorted(&self.clients)
    }

    pub(super) fn lock_topics(&self) -> MutexGuard<'_, HashMap<String, Arc<Topic>>> {
        // Every change to the map is a single insert or remove: a panic cannot leave it torn.
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every live topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self
            .lock_topics()
            .values()
            .filter(|t| t.is_live())
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name().cmp(b.name()));
        topics
    }

    /// The topic called `name` if it exists; never creates one.
    pub fn get_existing_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.lock_topics()
            .get(name)
            .filter(|t| t.is_live())
            .cloned()
    }

    pub(super) fn unregister(&self, topic: &Arc<Topic>) {
        topic.mark_gone();
        let mut topics = self.lock_topics();
        if topics
            .get(topic.name())
            .is_some_and(|t| Arc::ptr_eq(t, topic))
        {
            topics.remove(topic.name());
        }
    }
}
