//! What the broker knows of a connected client: its identity and counters, shared between its
//! connection (which updates them) and the channel it consumes from (which reports them in
//! /stats and wakes it when it may receive again).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// The clients of `map`, in connection order.
pub(crate) fn sorted(
    map: &Mutex<std::collections::HashMap<u64, std::sync::Arc<ClientInfo>>>,
) -> Vec<std::sync::Arc<ClientInfo>> {
    let mut clients: Vec<_> = map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    clients.sort_by_key(|c| c.id);
    clients
}

/// Go nsqd's client states, as /stats reports them.
pub mod state {
    pub const INIT: u8 = 0;
    pub const SUBSCRIBED: u8 = 3;
    pub const CLOSING: u8 = 4;
}

/// What a client said about itself in IDENTIFY, and what was negotiated.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub sample_rate: i32,
    pub output_buffer_size: i64,
    pub output_buffer_timeout_ms: i64,
    pub msg_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
}

/// What a connection's transport negotiated: read by `/stats` and by AUTH (which sends
/// whether TLS is up and the client certificate's common name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportInfo {
    /// `None` until a TLS handshake completed.
    pub tls: Option<TlsInfo>,
    pub snappy: bool,
    pub deflate: bool,
}

/// A completed TLS session, in the words Go's `/stats` uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Go's constant name, e.g. `TLS1.3`.
    pub version: String,
    /// As Go 1.3.0's `/stats` names it: a Go constant name for the 13 suites it lists (e.g.
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), `Unknown <IANA number>` for the others, which
    /// include every TLS 1.3 suite (`Unknown 4865`). See `crate::tls::describe`.
    pub cipher_suite: String,
    /// The ALPN protocol, empty when none.
    pub negotiated_protocol: String,
    pub negotiated_protocol_is_mutual: bool,
    /// The client certificate's subject common name, empty without one.
    pub client_common_name: String,
    /// The client certificate's subject and issuer (RFC 4514-like text) and serial (decimal),
    /// empty without one.
    pub client_subject: String,
    pub client_issuer: String,
    pub client_serial: String,
}

/// What AUTH granted a connection, as `/stats` reports it (Go's `authed`, `auth_identity`,
/// `auth_identity_url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// Holds a grant with at least one authorization.
    pub authed: bool,
    pub identity: String,
    pub identity_url: String,
}

/// One connected client.
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub remote_address: String,
    /// Seconds since the Unix epoch when it connected.
    pub connect_ts: i64,
    identity: Mutex<Identity>,
    transport: Mutex<TransportInfo>,
    auth: Mutex<AuthInfo>,
    pub state: AtomicU8,
    pub ready_count: AtomicI64,
    pub in_flight_count: AtomicI64,
    pub message_count: AtomicU64,
    pub finish_count: AtomicU64,
    pub requeue_count: AtomicU64,
    pub_counts: Mutex<BTreeMap<String, u64>>,
    /// Notified whenever the client may be able to take another message (RDY, FIN, REQ,
    /// timeouts) or must stop.
    pub wake: Notify,
}

impl ClientInfo {
    pub fn new(id: u64, remote_address: String, identity: Identity) -> Self {
        ClientInfo {
            id,
            remote_address,
            connect_ts: crate::message::now_ns() / 1_000_000_000,
            identity: Mutex::new(identity),
            transport: Mutex::new(TransportInfo::default()),
            auth: Mutex::new(AuthInfo::default()),
            state: AtomicU8::new(state::INIT),
            ready_count: AtomicI64::new(0),
            in_flight_count: AtomicI64::new(0),
            message_count: AtomicU64::new(0),
            finish_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            pub_counts: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
        }
    }

    /// A copy of the identity.
    pub fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the identity (IDENTIFY).
    pub fn set_identity(&self, identity: Identity) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
    }

    /// A copy of what the transport negotiated.
    pub fn transport(&self) -> TransportInfo {
        self.transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records an upgrade of the transport (TLS, snappy or deflate).
    pub fn set_transport(&self, transport: TransportInfo) {
        *self.transport.lock().unwrap_or_else(|p| p.into_inner()) = transport;
    }

    /// A copy of what AUTH granted.
    pub fn auth(&self) -> AuthInfo {
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records what AUTH (or its renewal after the TTL) granted.
    pub fn set_auth(&self, auth: AuthInfo) {
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
    }

    /// Counts `count` messages published to `topic`.
    pub fn published(&self, topic: &str, count: u64) {
        let mut counts = self.pub_counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(topic) {
            Some(n) => *n += count,
            None => {
                counts.insert(topic.to_string(), count);
            }
        }
    }

    /// Messages published per topic, in topic order.
    pub fn pub_counts(&self) -> Vec<(String, u64)> {
        let counts = self.pub_counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(t, n)| (t.clone(), *n)).collect()
    }

    /// Whether another message may be sent: in flight below RDY.
    pub fn is_ready(&self) -> bool {
        let ready = self.ready_count.load(Ordering::Acquire);
        ready > 0 && self.in_flight_count.load(Ordering::Acquire) < ready
    }

    /// A message left flight (finished, requeued or timed out). The pump is woken only when
    /// this makes room under RDY: a wake-up per FIN would cost more than the delivery.
    pub fn left_flight(&self) {
        let before = self.in_flight_count.fetch_sub(1, Ordering::AcqRel);
        if before >= self.ready_count.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }
}
