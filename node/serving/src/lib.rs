//! Serving the model: everything a node does to run its shards for others and to turn
//! prompts into paid work.
//!
//! - [`protocol`]: the shard protocol's messages, by concern (inference, verification,
//!   training); [`remote`]: a shard on another node as a pipeline transport, its
//!   sessions' requests batched per call and pipelined ([`outbox`]);
//!   [`server`]: answering peers' calls with this node's shards;
//! - [`directory`]: the live view of who serves which layers (DHT records, RTTs);
//!   [`routing`]: choosing a route of providers for a session;
//! - [`local`]: the node's own generator (its shards plus routed peers) behind the
//!   [`generator`] interface the HTTP API and RPC call;
//! - [`billing`]: the one place a shard's work record becomes a signed, counter-signed
//!   chain receipt (worker and client side), paid as the session goes;
//!   [`payments`]: the worker's side of that: serving on credit only one increment deep,
//!   and claiming what clients signed but did not submit;
//! - [`miner`]: the per-minute proof of possession that earns uptime, shown from the
//!   served layers' chunk trees ([`possession`]);
//! - [`material`]: keeping the spot-check material of receipts the chain still needs;
//! - [`speculation`]: drafting only while a generation runs alone.

pub mod admission;
pub mod billing;
pub mod directory;
pub mod generator;
pub mod limits;
pub mod local;
pub mod material;
pub mod miner;
pub mod options;
pub mod outbox;
pub mod payments;
pub mod possession;
pub mod probe_guard;
pub mod protocol;
#[cfg(feature = "fault-injection")]
pub mod relay;
pub mod remote;
pub mod routing;
pub mod server;
pub mod speculation;
mod streamer;

pub use directory::ShardDirectory;

use neuroshard_network::NetworkHandle;
use std::sync::Arc;

/// The network as the serving side uses it: the libp2p handle and the live directory of
/// shard providers. Nodes without networking (`dev`) have none.
#[derive(Clone)]
pub struct ShardNetwork {
    pub network: NetworkHandle,
    pub directory: Arc<ShardDirectory>,
}
