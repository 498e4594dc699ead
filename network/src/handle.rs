//! [`NetworkHandle`]: the cloneable, async front of the network service (the pattern of
//! rust-libp2p's file-sharing example). Every method sends a command to the event loop
//! that owns the swarm; answers come back on oneshot channels. The handle never blocks
//! the loop, and it works from any thread (a blocking shard transport can use
//! [`futures::executor::block_on`] on it).

use crate::error::NetworkError;
use crate::peers::{Offence, PeerInfo};
use crate::protocol::{Protocol, Topic};
use crate::records::{model_key, record_key, ProviderInfo, ProviderRecord};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::kad::RecordKey;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use neuroshard_primitives::Hash;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most providers one lookup returns (bounds the work a flood of fake providers causes).
pub const MAX_PROVIDERS: usize = 256;

/// Something the network delivers to the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message waiting for the node's verdict ([`NetworkHandle::validate`]); it is
    /// only forwarded to other peers once accepted.
    Gossip {
        topic: Topic,
        /// The peer that forwarded it to us (the one to blame if it is bad).
        source: PeerId,
        id: MessageId,
        data: Vec<u8>,
    },
    /// A request for the node to answer with [`NetworkHandle::respond`].
    Request {
        protocol: Protocol,
        peer: PeerId,
        data: Vec<u8>,
        reply: Reply,
    },
    PeerConnected(PeerId),
    PeerDisconnected(PeerId),
}

/// Where the answer to an inbound request goes.
#[derive(Debug)]
pub struct Reply {
    pub(crate) protocol: Protocol,
    pub(crate) channel: ResponseChannel<Vec<u8>>,
}

/// The node's verdict on a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Valid but not worth forwarding (duplicate, stale).
    Ignore,
    /// Invalid: drop it and penalise the peer that sent it.
    Reject,
}

/// What a finished DHT query cost, from Kademlia's own statistics.
#[derive(Clone, Debug)]
pub struct QueryStats {
    /// Requests the query sent.
    pub requests: u32,
    pub duration: Duration,
    /// Ended by Kademlia's query timeout, with `pending` requests still unanswered.
    pub timed_out: bool,
    pub pending: u32,
}

/// The answer of [`NetworkHandle::closest_peers`].
#[derive(Clone, Debug)]
pub struct ClosestPeers {
    /// The closest peers found (fewer if the query timed out).
    pub peers: Vec<PeerId>,
    pub stats: QueryStats,
}

/// The answer of [`NetworkHandle::get_record`].
#[derive(Clone, Debug)]
pub struct RecordLookup {
    /// The first record found, unverified; `None` if there was none.
    pub value: Option<Vec<u8>>,
    pub stats: QueryStats,
}

/// The service's state at a glance.
#[derive(Clone, Debug)]
pub struct NetworkStats {
    /// Established connections.
    pub connections: usize,
    /// Peers in the DHT routing table.
    pub routing_table: usize,
    /// Whether this node can be dialed (AutoNAT).
    pub reachability: crate::nat::Reachability,
    /// The relays holding a reservation of ours (a private node's way in).
    pub relays: Vec<PeerId>,
}

pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
    },
    Validate {
        id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    Request {
        peer: PeerId,
        protocol: Protocol,
        data: Vec<u8>,
        done: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    },
    Respond {
        reply: Reply,
        data: Vec<u8>,
    },
    Announce(ProviderInfo),
    FindProviders {
        key: RecordKey,
        done: oneshot::Sender<HashSet<PeerId>>,
    },
    GetRecord {
        key: RecordKey,
        done: oneshot::Sender<RecordLookup>,
    },
    ClosestPeers {
        key: Vec<u8>,
        done: oneshot::Sender<ClosestPeers>,
    },
    AddAddress {
        peer: PeerId,
        addr: Multiaddr,
    },
    Bootstrap,
    Stats(oneshot::Sender<NetworkStats>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Penalise {
        peer: PeerId,
        offence: Offence,
    },
    Dial(Multiaddr),
    #[cfg(feature = "fault-injection")]
    Partition(HashSet<PeerId>),
}

/// Cloneable access to the running network service.
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) local_peer_id: PeerId,
}

impl NetworkHandle {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    fn send(&self, command: Command) {
        // A stopped service drops commands; callers waiting on answers see `Stopped`.
        let _ = self.commands.send(command);
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Publishes `data` on `topic` (best effort: without peers it goes nowhere).
    pub fn publish(&self, topic: Topic, data: Vec<u8>) {
        self.send(Command::Publish { topic, data });
    }

    /// Reports the node's verdict on a gossip message; `Reject` also penalises `source`.
    pub fn validate(&self, id: MessageId, source: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject => MessageAcceptance::Reject,
        };
        self.send(Command::Validate {
            id,
            source,
            acceptance,
        });
    }

    /// Sends a request and waits for the response (the request times out in the loop).
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: Protocol,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, NetworkError> {
        self.ask(|done| Command::Request {
            peer,
            protocol,
            data,
            done,
        })
        .await?
    }

    /// Answers an inbound request.
    pub fn respond(&self, reply: Reply, data: Vec<u8>) {
        self.send(Command::Respond { reply, data });
    }

    /// Announces (or refreshes) this node as a provider of `info.shards` of `info.model`.
    /// The record and provider keys expire [`crate::behaviour::RECORD_TTL`] later, and an
    /// announce made before the node has peers reaches nobody: call it again well
    /// within the TTL (the node does every 10 s).
    pub fn announce(&self, info: ProviderInfo) {
        self.send(Command::Announce(info));
    }

    /// Every verified provider record of `model` the DHT knows.
    pub async fn providers(&self, model: Hash) -> Result<Vec<ProviderRecord>, NetworkError> {
        let peers = self
            .ask(|done| Command::FindProviders {
                key: model_key(&model),
                done,
            })
            .await?;
        let lookups = peers
            .into_iter()
            .take(MAX_PROVIDERS)
            .map(|peer| async move {
                let bytes = self
                    .get_record(record_key(&model, &peer))
                    .await
                    .ok()?
                    .value?;
                match ProviderRecord::decode_verified(&bytes) {
                    Ok(r) if r.peer_id() == Some(peer) && r.info.model == model => Some(r),
                    _ => {
                        self.penalise(peer, Offence::ForgedRecord);
                        None
                    }
                }
            });
        Ok(futures::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
            .collect())
    }

    /// Looks up the DHT record under `key` and returns the first one found, as it came
    /// (check it before use, e.g. with [`ProviderRecord::decode_verified`]), with what
    /// the lookup cost.
    pub async fn get_record(&self, key: RecordKey) -> Result<RecordLookup, NetworkError> {
        self.ask(|done| Command::GetRecord { key, done }).await
    }

    /// Walks the DHT for the peers closest to `key` (e.g. a peer id's bytes) and returns
    /// them with what the walk cost.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<ClosestPeers, NetworkError> {
        self.ask(|done| Command::ClosestPeers { key, done }).await
    }

    /// Adds `addr` as an address of `peer` to the DHT routing table without dialing it
    /// (Kademlia dials when a query needs the peer). With [`Self::bootstrap`], this joins
    /// the network through peers whose ids are known, where [`Self::dial`] needs a
    /// connection and the peer's identify answer first.
    pub fn add_address(&self, peer: PeerId, addr: Multiaddr) {
        self.send(Command::AddAddress { peer, addr });
    }

    /// Starts a DHT bootstrap (a lookup of our own id, then of a random key per bucket)
    /// from the peers in the routing table. The service also bootstraps by itself when
    /// the first peer identifies itself, and then every
    /// [`crate::BehaviourConfig::dht_refresh`].
    pub fn bootstrap(&self) {
        self.send(Command::Bootstrap);
    }

    /// Open connections and the size of the DHT routing table.
    pub async fn stats(&self) -> Result<NetworkStats, NetworkError> {
        self.ask(Command::Stats).await
    }

    /// Connected peers with their addresses, round-trip times and scores.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.ask(Command::Peers).await
    }

    /// The addresses this node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Charges `offence` to `peer` (banning it at the threshold).
    pub fn penalise(&self, peer: PeerId, offence: Offence) {
        self.send(Command::Penalise { peer, offence });
    }

    /// Fault injection for tests: cuts this node off from exactly `peers` (closing their
    /// connections and refusing new ones either way) and reconnects to those cut off
    /// before that are no longer in the set; an empty set heals the partition. Banned
    /// peers stay banned.
    #[cfg(feature = "fault-injection")]
    pub fn set_partitioned(&self, peers: HashSet<PeerId>) {
        self.send(Command::Partition(peers));
    }

    /// Dials an address (a bootnode, with or without a /p2p/ suffix).
    pub fn dial(&self, addr: Multiaddr) {
        self.send(Command::Dial(addr));
    }
}
