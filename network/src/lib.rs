//! NeuroShard's peer-to-peer layer on libp2p. It owns the swarm and nothing else: it finds
//! peers (Kademlia, seeded by bootnodes; after that no node is special), publishes and
//! looks up signed shard provider records, carries gossip (transactions, receipts, blocks,
//! finality votes) that the node validates before it spreads, and carries request-response
//! traffic (activations between pipeline stages, block sync) in size-capped frames. What
//! the bytes mean is the node's business: this crate depends only on `primitives`.
//!
//! Nodes behind NAT are reached through relays and hole punching ([`nat`]).
//!
//! Start it with [`start`] (over TCP and QUIC, or over the in-memory [`Transport`] for
//! simulations); talk to it through the cloneable [`NetworkHandle`]; read what
//! arrives from the [`NetworkEvent`] receiver.

pub mod behaviour;
pub mod budget;
pub mod codec;
pub mod connmgr;
pub mod error;
pub mod handle;
pub mod nat;
pub mod peers;
pub mod protocol;
pub mod records;
pub mod service;
pub mod transport;

pub use behaviour::BehaviourConfig;
pub use budget::PeerBudget;
pub use connmgr::ConnectionBudget;
pub use error::NetworkError;
pub use handle::{
    ClosestPeers, NetworkEvent, NetworkHandle, NetworkStats, QueryStats, RecordLookup, Reply,
    Verdict,
};
pub use libp2p::gossipsub::MessageId;
pub use libp2p::{identity::Keypair as NetworkKeypair, Multiaddr, PeerId};
pub use nat::{Link, NatConfig, Reachability};
pub use peers::{Offence, PeerInfo};
pub use protocol::{Protocol, Topic};
pub use records::{AccountBinding, ProviderInfo, ProviderRecord};
pub use service::{start, NetworkConfig};
pub use transport::Transport;
