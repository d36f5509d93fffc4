//! The nsqd → nsqlookupd loop: one peer per `--lookupd-tcp-address`, each on its own task
//! (see `lookup/peer.rs`); this loop owns them. It starts after boot replay, so the peers'
//! first connect announces everything; then it forwards each broker change event as REGISTER
//! or UNREGISTER to every peer, and follows `nsqlookupd_tcp_addresses` changes at runtime
//! (PUT /config): peers no longer listed are closed, new ones added.
//!
//! It also answers the broker's question "which channels does this new topic have
//! elsewhere?" from lookupd's HTTP API (`GET /channels?topic=`), so a new topic pre-creates
//! them before it delivers (nsqio/nsq#826).

mod channel_source;
mod peer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, ChangeEvent};
use crate::config::LiveOptions;
use crate::lookup_wire::{Command, LookupdInfo, PeerInfo};
pub use channel_source::LookupChannelSource;
use peer::PeerMessage;
pub use peer::{announce_once, PeerError, IO_TIMEOUT, PING_INTERVAL};

/// How many commands may wait for one peer before it is resynchronised instead.
const PEER_BACKLOG: usize = 4096;

/// What the peers share.
pub struct LookupContext {
    broker: Arc<Broker>,
    /// What this nsqd says in IDENTIFY.
    identity: PeerInfo,
    max_body_size: usize,
    /// lookupd TCP address → its HTTP address, learned from IDENTIFY responses.
    http_addresses: Mutex<BTreeMap<String, String>>,
}

impl LookupContext {
    /// A context for `broker`, identifying as `identity`.
    pub fn new(broker: Arc<Broker>, identity: PeerInfo, max_body_size: usize) -> Arc<Self> {
        Arc::new(LookupContext {
            broker,
            identity,
            max_body_size,
            http_addresses: Mutex::new(BTreeMap::new()),
        })
    }

    /// The HTTP addresses of the lookupds currently connected.
    pub fn http_addresses(&self) -> Vec<String> {
        self.http_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn learn_http_address(&self, tcp_address: &str, info: &LookupdInfo) {
        let http = format!("{}:{}", info.broadcast_address, info.http_port);
        self.http_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tcp_address.into(), http);
    }

    fn forget_http_address(&self, tcp_address: &str) {
        self.http_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tcp_address);
    }

    /// REGISTER for every topic without channels and every topic/channel pair, now.
    fn registrations(&self) -> Vec<Command> {
        let mut commands = Vec::new();
        for topic in self.broker.topics() {
            let channels = topic.channels();
            if channels.is_empty() {
                commands.push(Command::register(topic.name(), None));
            }
            for channel in channels {
                commands.push(Command::register(topic.name(), Some(channel.name())));
            }
        }
        commands
    }
}

/// The command an event becomes, as Go's lookup loop sends it.
fn command_for(event: &ChangeEvent) -> Option<Command> {
    match event {
        ChangeEvent::TopicCreated { topic } => Some(Command::register(topic, None)),
        ChangeEvent::TopicDeleted { topic } => Some(Command::unregister(topic, None)),
        ChangeEvent::ChannelCreated { topic, channel } => {
            Some(Command::register(topic, Some(channel)))
        }
        ChangeEvent::ChannelDeleted { topic, channel } => {
            Some(Command::unregister(topic, Some(channel)))
        }
        ChangeEvent::TopicPaused { .. } | ChangeEvent::ChannelPaused { .. } => None,
    }
}

struct PeerHandle {
    sender: mpsc::Sender<PeerMessage>,
    stop: CancellationToken,
    needs_resync: bool,
}

impl PeerHandle {
    fn send(&mut self, message: PeerMessage) {
        if self.needs_resync {
            self.needs_resync = self.sender.try_send(PeerMessage::Resync).is_err();
            return;
        }
        if self.sender.try_send(message).is_err() {
            // The peer is too far behind: it will reconnect and announce everything.
            self.needs_resync = self.sender.try_send(PeerMessage::Resync).is_err();
        }
    }
}

/// Runs the loop until `shutdown`; then every peer is closed.
pub async fn run(
    context: Arc<LookupContext>,
    options: Arc<LiveOptions>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let mut peers: HashMap<String, PeerHandle> = HashMap::new();
    let mut events = context.broker.subscribe();
    let mut option_changes = options.watch();
    let mut addresses = option_changes
        .borrow_and_update()
        .nsqlookupd_tcp_addresses
        .clone();
    loop {
        // Close peers no longer listed, add new ones.
        peers.retain(|address, peer| {
            let keep = addresses.contains(address);
            if !keep {
                tracing::info!(lookupd = %address, "LOOKUP: removing peer");
                peer.stop.cancel();
            }
            keep
        });
        for address in &addresses {
            if peers.contains_key(address) {
                continue;
            }
            tracing::info!(lookupd = %address, "LOOKUP: adding peer");
            let (sender, receiver) = mpsc::channel(PEER_BACKLOG);
            let stop = shutdown.child_token();
            tasks.spawn(peer::run(
                address.clone(),
                context.clone(),
                receiver,
                stop.clone(),
            ));
            peers.insert(
                address.clone(),
                PeerHandle {
                    sender,
                    stop,
                    needs_resync: false,
                },
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = option_changes.changed() => {
                if changed.is_err() {
                    break;
                }
                addresses = option_changes.borrow_and_update().nsqlookupd_tcp_addresses.clone();
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if let Some(command) = command_for(&event) {
                        for peer in peers.values_mut() {
                            peer.send(PeerMessage::Command(command.clone()));
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "LOOKUP: fell behind the broker's events; resynchronising");
                    for peer in peers.values_mut() {
                        peer.send(PeerMessage::Resync);
                    }
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    for peer in peers.values() {
        peer.stop.cancel();
    }
    tasks.close();
    tasks.wait().await;
}
