//! The registration DB: which nsqd (producer) has announced which topic and channel, and when
//! each was last heard from. A plain data structure; the daemon keeps it behind a lock.
//!
//! A registration is `(category, key, subkey)`: `(client, "", "")` for every identified nsqd,
//! `(topic, <topic>, "")` and `(channel, <topic>, <channel>)`. Each maps to its producers by
//! peer id (the connection's remote address). A registration may outlive its producers (it
//! still lists the topic or channel) until it is removed explicitly.
//!
//! Time is passed in (`now`) so that the activity and tombstone rules can be tested without
//! waiting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The kind of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Client,
    Topic,
    Channel,
}

impl Category {
    /// Go's name for the category.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Client => "client",
            Category::Topic => "topic",
            Category::Channel => "channel",
        }
    }
}

/// Matches any key or subkey in the queries that take patterns.
pub const WILDCARD: &str = "*";

/// One registration key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration {
    pub category: Category,
    pub key: String,
    pub subkey: String,
}

impl Registration {
    /// The registration every identified nsqd has.
    pub fn client() -> Self {
        Registration {
            category: Category::Client,
            key: String::new(),
            subkey: String::new(),
        }
    }

    pub fn topic(topic: &str) -> Self {
        Registration {
            category: Category::Topic,
            key: topic.into(),
            subkey: String::new(),
        }
    }

    pub fn channel(topic: &str, channel: &str) -> Self {
        Registration {
            category: Category::Channel,
            key: topic.into(),
            subkey: channel.into(),
        }
    }

    /// Whether this registration matches `category`, `key` and `subkey`, where `*` in `key` or
    /// `subkey` matches anything.
    pub fn is_match(&self, category: Category, key: &str, subkey: &str) -> bool {
        self.category == category
            && (key == WILDCARD || self.key == key)
            && (subkey == WILDCARD || self.subkey == subkey)
    }

    /// The name this registration is about: the channel for a channel, else the key.
    fn own_name(&self) -> &str {
        match self.category {
            Category::Channel => &self.subkey,
            Category::Client | Category::Topic => &self.key,
        }
    }
}

/// What an nsqd said about itself in IDENTIFY, plus where it connected from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The connection's remote address; unique among live connections.
    pub id: String,
    pub remote_address: String,
    pub hostname: String,
    pub broadcast_address: String,
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: String,
}

/// An identified nsqd: its info and when it was last heard from. Shared by every registration
/// it holds, so one PING refreshes them all.
#[derive(Debug)]
pub struct Peer {
    pub info: PeerInfo,
    last_update: Mutex<Instant>,
}

impl Peer {
    pub fn new(info: PeerInfo, now: Instant) -> Arc<Self> {
        Arc::new(Peer {
            info,
            last_update: Mutex::new(now),
        })
    }

    /// Records that the peer was heard from at `now`; returns the previous time.
    pub fn touch(&self, now: Instant) -> Instant {
        let mut last = self
            .last_update
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *last, now)
    }

    /// When the peer was last heard from.
    pub fn last_update(&self) -> Instant {
        *self
            .last_update
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A peer as the producer of one registration. The tombstone is per registration: tombstoning
/// an nsqd for one topic leaves its other topics alone.
#[derive(Debug, Clone)]
pub struct Producer {
    pub peer: Arc<Peer>,
    tombstoned_at: Option<Instant>,
}

impl Producer {
    fn new(peer: &Arc<Peer>) -> Self {
        Producer {
            peer: peer.clone(),
            tombstoned_at: None,
        }
    }

    /// Whether the producer was ever tombstoned (however long ago).
    pub fn tombstoned_at(&self) -> Option<Instant> {
        self.tombstoned_at
    }

    /// Whether a tombstone set less than `lifetime` before `now` hides this producer.
    pub fn is_tombstoned(&self, now: Instant, lifetime: Duration) -> bool {
        self.tombstoned_at
            .is_some_and(|at| now.saturating_duration_since(at) < lifetime)
    }

    /// Whether the producer is listed: heard from within `inactivity_timeout` and not
    /// tombstoned within `tombstone_lifetime`.
    pub fn is_active(
        &self,
        now: Instant,
        inactivity_timeout: Duration,
        tombstone_lifetime: Duration,
    ) -> bool {
        now.saturating_duration_since(self.peer.last_update()) <= inactivity_timeout
            && !self.is_tombstoned(now, tombstone_lifetime)
    }
}

/// Keeps the producers of `producers` that [`Producer::is_active`] at `now`.
pub fn filter_by_active(
    producers: Vec<Producer>,
    now: Instant,
    inactivity_timeout: Duration,
    tombstone_lifetime: Duration,
) -> Vec<Producer> {
    producers
        .into_iter()
        .filter(|p| p.is_active(now, inactivity_timeout, tombstone_lifetime))
        .collect()
}

/// `instant` as Unix nanoseconds of the wall clock (for display).
pub fn unix_nanos(instant: Instant) -> i64 {
    let now = Instant::now();
    let wall = if instant <= now {
        SystemTime::now().checked_sub(now - instant)
    } else {
        SystemTime::now().checked_add(instant - now)
    };
    wall.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The registrations and their producers.
#[derive(Debug, Default)]
pub struct RegistrationDb {
    registrations: BTreeMap<Registration, BTreeMap<String, Producer>>,
}

impl RegistrationDb {
    pub fn new() -> Self {
        RegistrationDb::default()
    }

    /// Adds `registration` with no producers, if it is not there yet.
    pub fn add_registration(&mut self, registration: Registration) {
        self.registrations.entry(registration).or_default();
    }

    /// Adds `peer` as a producer of `registration` (creating the registration); returns whether
    /// it was new. An existing producer is kept as it is, tombstone included.
    pub fn add_producer(&mut self, registration: Registration, peer: &Arc<Peer>) -> bool {
        let producers = self.registrations.entry(registration).or_default();
        if producers.contains_key(&peer.info.id) {
            return false;
        }
        producers.insert(peer.info.id.clone(), Producer::new(peer));
        true
    }

    /// Removes the peer `id` from `registration`'s producers. Returns whether it was there and
    /// how many producers are left; the registration itself stays, even with none.
    pub fn remove_producer(&mut self, registration: &Registration, id: &str) -> (bool, usize) {
        match self.registrations.get_mut(registration) {
            Some(producers) => {
                let removed = producers.remove(id).is_some();
                (removed, producers.len())
            }
            None => (false, 0),
        }
    }

    /// As [`RegistrationDb::remove_producer`], and when no producer is left of an
    /// `#ephemeral` topic or channel, removes the registration too.
    pub fn remove_producer_dropping_ephemeral(
        &mut self,
        registration: &Registration,
        id: &str,
    ) -> (bool, usize) {
        let (removed, left) = self.remove_producer(registration, id);
        if left == 0 && crate::names::is_ephemeral(registration.own_name()) {
            self.remove_registration(registration);
        }
        (removed, left)
    }

    /// Removes `registration` and its producers.
    pub fn remove_registration(&mut self, registration: &Registration) {
        self.registrations.remove(registration);
    }

    /// The registrations matching `category`, `key` and `subkey` (`*` matches any), in order.
    pub fn find_registrations(
        &self,
        category: Category,
        key: &str,
        subkey: &str,
    ) -> Vec<Registration> {
        self.registrations
            .keys()
            .filter(|r| r.is_match(category, key, subkey))
            .cloned()
            .collect()
    }

    /// The producers of the registrations matching `category`, `key` and `subkey` (`*` matches
    /// any), each peer once (its first registration's producer).
    pub fn find_producers(&self, category: Category, key: &str, subkey: &str) -> Vec<Producer> {
        let mut seen = std::collections::HashSet::new();
        self.registrations
            .iter()
            .filter(|(r, _)| r.is_match(category, key, subkey))
            .flat_map(|(_, producers)| producers.values())
            .filter(|p| seen.insert(p.peer.info.id.clone()))
            .cloned()
            .collect()
    }

    /// The producer `id` of exactly `registration`, if it is one.
    pub fn producer(&self, registration: &Registration, id: &str) -> Option<&Producer> {
        self.registrations.get(registration)?.get(id)
    }

    /// Every registration the peer `id` is a producer of, in order.
    pub fn lookup_registrations(&self, id: &str) -> Vec<Registration> {
        self.registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(id))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Removes the peer `id` from every registration (registrations stay); returns those it
    /// was removed from.
    pub fn remove_peer(&mut self, id: &str) -> Vec<Registration> {
        let mut removed = Vec::new();
        for (registration, producers) in &mut self.registrations {
            if producers.remove(id).is_some() {
                removed.push(registration.clone());
            }
        }
        removed
    }

    /// Tombstones, at `now`, the producers of the topic registrations matching `topic` (`*`
    /// matches any) whose node (`<broadcast_address>:<http_port>`) is `node`. Returns how
    /// many were tombstoned.
    pub fn tombstone_topic_producer(&mut self, topic: &str, node: &str, now: Instant) -> usize {
        let mut count = 0;
        for (registration, producers) in &mut self.registrations {
            if !registration.is_match(Category::Topic, topic, "") {
                continue;
            }
            for producer in producers.values_mut() {
                let info = &producer.peer.info;
                if format!("{}:{}", info.broadcast_address, info.http_port) == node {
                    producer.tombstoned_at = Some(now);
                    count += 1;
                }
            }
        }
        count
    }

    /// Every registration with its producers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Registration, impl Iterator<Item = &Producer>)> {
        self.registrations
            .iter()
            .map(|(registration, producers)| (registration, producers.values()))
    }
}

/// The keys of `registrations`, in order.
pub fn keys(registrations: &[Registration]) -> Vec<String> {
    registrations.iter().map(|r| r.key.clone()).collect()
}

/// The subkeys of `registrations`, in order.
pub fn subkeys(registrations: &[Registration]) -> Vec<String> {
    registrations.iter().map(|r| r.subkey.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, now: Instant) -> Arc<Peer> {
        Peer::new(
            PeerInfo {
                id: id.into(),
                remote_address: id.into(),
                hostname: "host".into(),
                broadcast_address: format!("b-{id}"),
                tcp_port: 4150,
                http_port: 4151,
                version: "1.3.0".into(),
            },
            now,
        )
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn add_find_and_wildcards() {
        let now = Instant::now();
        let (a, b) = (peer("a:1", now), peer("b:1", now));
        let mut db = RegistrationDb::new();
        assert!(db.add_producer(Registration::topic("t1"), &a));
        assert!(!db.add_producer(Registration::topic("t1"), &a));
        assert!(db.add_producer(Registration::topic("t1"), &b));
        assert!(db.add_producer(Registration::channel("t1", "c1"), &a));
        assert!(db.add_producer(Registration::topic("t2"), &b));
        db.add_registration(Registration::channel("t2", "c2"));
        db.add_registration(Registration::topic("t3"));

        assert_eq!(
            keys(&db.find_registrations(Category::Topic, "*", "")),
            ["t1", "t2", "t3"]
        );
        assert_eq!(
            subkeys(&db.find_registrations(Category::Channel, "t1", "*")),
            ["c1"]
        );
        assert_eq!(
            subkeys(&db.find_registrations(Category::Channel, "*", "*")),
            ["c1", "c2"]
        );
        assert!(db
            .find_registrations(Category::Topic, "nope", "")
            .is_empty());
        assert_eq!(db.find_registrations(Category::Topic, "t3", "").len(), 1);

        let ids = |ps: Vec<Producer>| {
            ps.iter()
                .map(|p| p.peer.info.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(db.find_producers(Category::Topic, "t1", "")),
            ["a:1", "b:1"]
        );
        // Each peer once, across registrations.
        assert_eq!(
            ids(db.find_producers(Category::Topic, "*", "")),
            ["a:1", "b:1"]
        );
        assert!(db.find_producers(Category::Topic, "t3", "").is_empty());
        assert_eq!(
            keys(&db.lookup_registrations("a:1")),
            ["t1", "t1"],
            "a topic and a channel registration of t1"
        );
        assert!(db.producer(&Registration::topic("t2"), "b:1").is_some());
        assert!(db.producer(&Registration::topic("t2"), "a:1").is_none());
    }

    #[test]
    fn remove_producer_keeps_registration() {
        let now = Instant::now();
        let a = peer("a:1", now);
        let mut db = RegistrationDb::new();
        db.add_producer(Registration::topic("t"), &a);
        assert_eq!(
            db.remove_producer(&Registration::topic("t"), "a:1"),
            (true, 0)
        );
        assert_eq!(
            db.remove_producer(&Registration::topic("t"), "a:1"),
            (false, 0)
        );
        assert_eq!(
            db.remove_producer(&Registration::topic("x"), "a:1"),
            (false, 0)
        );
        assert_eq!(
            keys(&db.find_registrations(Category::Topic, "*", "")),
            ["t"]
        );
        db.remove_registration(&Registration::topic("t"));
        assert!(db.find_registrations(Category::Topic, "*", "").is_empty());
    }

    #[test]
    fn ephemeral_registration_goes_with_its_last_producer() {
        let now = Instant::now();
        let (a, b) = (peer("a:1", now), peer("b:1", now));
        let mut db = RegistrationDb::new();
        let eph = Registration::channel("t", "c#ephemeral");
        let durable = Registration::channel("t", "d");
        db.add_producer(eph.clone(), &a);
        db.add_producer(eph.clone(), &b);
        db.add_producer(durable.clone(), &a);
        assert_eq!(
            db.remove_producer_dropping_ephemeral(&eph, "a:1"),
            (true, 1)
        );
        assert_eq!(
            subkeys(&db.find_registrations(Category::Channel, "t", "*")),
            ["c#ephemeral", "d"]
        );
        assert_eq!(
            db.remove_producer_dropping_ephemeral(&eph, "b:1"),
            (true, 0)
        );
        assert_eq!(
            db.remove_producer_dropping_ephemeral(&durable, "a:1"),
            (true, 0)
        );
        assert_eq!(
            subkeys(&db.find_registrations(Category::Channel, "t", "*")),
            ["d"]
        );
        let eph_topic = Registration::topic("e#ephemeral");
        db.add_producer(eph_topic.clone(), &a);
        db.remove_producer_dropping_ephemeral(&eph_topic, "a:1");
        assert!(db.find_registrations(Category::Topic, "*", "").is_empty());
    }

    #[test]
    fn remove_peer_leaves_registrations() {
        let now = Instant::now();
        let (a, b) = (peer("a:1", now), peer("b:1", now));
        let mut db = RegistrationDb::new();
        db.add_producer(Registration::client(), &a);
        db.add_producer(Registration::client(), &b);
        db.add_producer(Registration::topic("t"), &a);
        db.add_producer(Registration::channel("t", "c#ephemeral"), &a);
        assert_eq!(db.remove_peer("a:1").len(), 3);
        assert!(db.lookup_registrations("a:1").is_empty());
        assert_eq!(db.find_registrations(Category::Channel, "*", "*").len(), 1);
        assert_eq!(db.find_producers(Category::Client, "", "").len(), 1);
    }

    #[test]
    fn inactive_producers_are_filtered() {
        let start = Instant::now();
        let a = peer("a:1", start);
        let mut db = RegistrationDb::new();
        db.add_producer(Registration::topic("t"), &a);
        let producers = || db.find_producers(Category::Topic, "t", "");
        let timeout = Duration::from_secs(300);
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(
            filter_by_active(producers(), at(300), timeout, HOUR).len(),
            1
        );
        assert!(filter_by_active(producers(), at(301), timeout, HOUR).is_empty());
        // A ping refreshes every registration of the peer.
        assert_eq!(a.touch(at(301)), start);
        assert_eq!(
            filter_by_active(producers(), at(500), timeout, HOUR).len(),
            1
        );
    }

    #[test]
    fn tombstones_hide_for_their_lifetime() {
        let start = Instant::now();
        let (a, b) = (peer("a:1", start), peer("b:1", start));
        let mut db = RegistrationDb::new();
        db.add_producer(Registration::topic("t"), &a);
        db.add_producer(Registration::topic("t"), &b);
        db.add_producer(Registration::topic("u"), &a);
        assert_eq!(db.tombstone_topic_producer("t", "b-a:1:4151", start), 1);
        assert_eq!(db.tombstone_topic_producer("t", "nobody:4151", start), 0);
        let lifetime = Duration::from_secs(45);
        let active = |db: &RegistrationDb, topic: &str, secs| {
            let producers = db.find_producers(Category::Topic, topic, "");
            filter_by_active(producers, start + Duration::from_secs(secs), HOUR, lifetime)
                .iter()
                .map(|p| p.peer.info.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(active(&db, "t", 44), ["b:1"]);
        assert_eq!(active(&db, "u", 44), ["a:1"], "other topics unaffected");
        assert_eq!(
            active(&db, "t", 45),
            ["a:1", "b:1"],
            "the tombstone expired"
        );
        // Registering again keeps the tombstone; unregistering drops it.
        assert!(!db.add_producer(Registration::topic("t"), &a));
        assert!(db
            .producer(&Registration::topic("t"), "a:1")
            .is_some_and(|p| p.is_tombstoned(start, lifetime)));
        db.remove_producer(&Registration::topic("t"), "a:1");
        db.add_producer(Registration::topic("t"), &a);
        assert_eq!(active(&db, "t", 1), ["a:1", "b:1"]);
    }
}
