//! The node on the network: starts the libp2p service (`neuroshard-network`) with the
//! node's persistent network key and runs the one event loop that routes what arrives:
//! - gossip on the chain's topics and block-sync requests go to the chain
//!   ([`ChainGossip`]), which also publishes what this node submits, authors and votes;
//! - shard-protocol requests go to this node's [`ShardService`];
//! - a new peer is asked for the blocks after our head.
//!
//! Requests cost this node work their senders do not pay for, so each peer's are
//! bounded ([`RequestBudgets`]): beyond its budget a shard call is answered "busy" and
//! a sync request is dropped unanswered.
//!
//! Discovery: a [`ShardDirectory`] keeps the latest view of everybody's provider records,
//! for routing and the `neuroshard_shards` RPC.

use anyhow::Context;
use neuroshard_client::{ChainGossip, Client};
use neuroshard_network::{
    BehaviourConfig, NetworkConfig, NetworkEvent, NetworkKeypair, Offence, PeerBudget, Protocol,
    Transport,
};
use neuroshard_primitives::Keypair;
use neuroshard_serving::protocol::forward_sessions;
use neuroshard_serving::server::ShardService;
use neuroshard_serving::{ShardDirectory, ShardNetwork};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Network settings from the command line.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    pub listen: Vec<neuroshard_network::Multiaddr>,
    pub bootnodes: Vec<neuroshard_network::Multiaddr>,
    /// Most sessions per forward call to another node's shard (`--forward-batch`).
    pub forward_batch: usize,
    /// Fault injection for tests: the file naming the peers this node is partitioned
    /// from ([`crate::partition::follow_file`]).
    #[cfg(feature = "fault-injection")]
    pub fault_partition_file: Option<std::path::PathBuf>,
    /// Fault injection for tests: gossip a second, differently sealed copy of every
    /// block this node authors (an equivocation its peers must catch and report).
    #[cfg(feature = "fault-injection")]
    pub fault_equivocate: bool,
    /// Fault injection for tests: no hole punching (relayed connections stay relayed).
    #[cfg(feature = "fault-injection")]
    pub fault_no_hole_punching: bool,
}

/// The running network, as the other components use it.
#[derive(Clone)]
pub struct P2p {
    /// The chain's gossip, sync and finality.
    pub chain: ChainGossip,
    /// The network handle and the provider directory, for serving and verification.
    pub shards: ShardNetwork,
}

/// Loads the node's ed25519 network key from `dir/secret_ed25519`, creating it on first
/// start so the peer id stays the same across restarts.
pub fn load_or_create_key(dir: &Path) -> anyhow::Result<NetworkKeypair> {
    let path = dir.join("secret_ed25519");
    if let Ok(bytes) = std::fs::read(&path) {
        let mut secret: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
        return NetworkKeypair::ed25519_from_bytes(&mut secret)
            .with_context(|| format!("{} is not an ed25519 secret", path.display()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut secret: [u8; 32] = rand::random();
    let key = NetworkKeypair::ed25519_from_bytes(secret)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, secret).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    secret.fill(0);
    Ok(key)
}

/// Starts the network and the tasks that glue it to the chain and to this node's shard
/// service.
pub async fn start(
    config: P2pConfig,
    base_path: &Path,
    client: Arc<Client>,
    key: Option<Keypair>,
    validator: bool,
    service: ShardService,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<P2p> {
    let keypair = load_or_create_key(&base_path.join("network"))?;
    let model = client.params()?.ponw.model;
    #[allow(unused_mut)]
    let mut behaviour = BehaviourConfig::default();
    #[cfg(feature = "fault-injection")]
    {
        behaviour.nat.hole_punching = !config.fault_no_hole_punching;
    }
    let (network, events) = neuroshard_network::start(NetworkConfig {
        keypair,
        listen: config.listen.clone(),
        bootnodes: config.bootnodes.clone(),
        genesis: client.genesis_hash(),
        behaviour,
        transport: Transport::Tcp,
    })
    .await?;
    info!(peer_id = %network.local_peer_id(), "p2p network started");
    let chain = ChainGossip::new(client, network.clone(), key, validator);
    #[cfg(feature = "fault-injection")]
    let chain = chain.with_fault_equivocate(config.fault_equivocate);
    let shards = ShardNetwork {
        directory: Arc::new(
            ShardDirectory::new(network.clone(), model.hash, model.num_layers)
                .with_forward_batch(config.forward_batch),
        ),
        network,
    };
    tokio::spawn(dispatch(chain.clone(), service, events));
    tokio::spawn(chain.clone().publish_local(shutdown.clone()));
    tokio::spawn(chain.clone().periodic_sync(shutdown.clone()));
    #[cfg(feature = "fault-injection")]
    if let Some(path) = config.fault_partition_file.clone() {
        tokio::spawn(crate::partition::follow_file(
            shards.network.clone(),
            path,
            shutdown.clone(),
        ));
    }
    tokio::spawn(shards.directory.clone().refresh_loop(shutdown));
    Ok(P2p { chain, shards })
}

/// What each peer's requests may cost this node.
pub struct RequestBudgets {
    /// Sync requests, counted one unit each: 4 a second (16 saved), 2 at once. A
    /// syncing peer asks for 64 blocks a request and waits for each answer.
    sync: PeerBudget,
    /// Shard calls by bytes: 64 MiB/s (128 MiB saved), 16 at once, a forward call
    /// counting once per session it carries (each session's pipeline has one request in
    /// flight per hop, so this is 16 sessions of one peer running through this node at
    /// the same moment, batched in calls or not).
    shard: PeerBudget,
}

impl Default for RequestBudgets {
    fn default() -> Self {
        Self {
            sync: PeerBudget::new(4, 16, 2),
            shard: PeerBudget::new(64 << 20, 128 << 20, 16),
        }
    }
}

/// Routes network events to the chain and the shard service.
async fn dispatch(
    chain: ChainGossip,
    service: ShardService,
    mut events: mpsc::Receiver<NetworkEvent>,
) {
    let budgets = Arc::new(RequestBudgets::default());
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::Gossip {
                topic,
                source,
                id,
                data,
            } => {
                chain.on_gossip(topic, source, id, data).await;
            }
            NetworkEvent::Request {
                protocol,
                peer,
                data,
                reply,
            } => {
                // A forward call counts each of its sessions as a call in flight.
                let (budget, cost, calls) = match protocol {
                    Protocol::Sync => (&budgets.sync, 1, 1),
                    Protocol::Activations => (&budgets.shard, data.len(), forward_sessions(&data)),
                };
                if !budget.admit_calls(peer, cost, calls) {
                    debug!(%peer, ?protocol, "peer over its request budget");
                    if protocol == Protocol::Activations {
                        chain.network.respond(reply, ShardService::busy());
                    }
                    continue;
                }
                let (chain, service, budgets) = (chain.clone(), service.clone(), budgets.clone());
                tokio::spawn(async move {
                    let answer = match protocol {
                        Protocol::Sync => chain.answer_sync(&data),
                        Protocol::Activations => service.answer(peer, data).await,
                    };
                    match protocol {
                        Protocol::Sync => budgets.sync.done_calls(peer, calls),
                        Protocol::Activations => budgets.shard.done_calls(peer, calls),
                    }
                    match answer {
                        Some(bytes) => chain.network.respond(reply, bytes),
                        None => {
                            warn!(%peer, ?protocol, "undecodable request dropped");
                            chain.network.penalise(peer, Offence::Malformed);
                        }
                    }
                });
            }
            NetworkEvent::PeerConnected(peer) => {
                let chain = chain.clone();
                tokio::spawn(async move { chain.sync_from(peer).await });
            }
            NetworkEvent::PeerDisconnected(_) => {}
        }
    }
}
