//! The node on the network: starts the libp2p service (`neuroshard-network`) with the
//! node's persistent network key and runs the one event loop that routes what arrives:
//! - gossip on the chain's topics and block-sync requests go to the chain
//!   ([`ChainGossip`]), which also publishes what this node submits, authors and votes;
//! - shard-protocol requests go to this node's [`ShardService`];
//! - a new peer is asked for the blocks after our head.
//!
//! Discovery: a [`ShardDirectory`] keeps the latest view of everybody's provider records,
//! for routing and the `neuroshard_shards` RPC.

use anyhow::Context;
use neuroshard_client::{ChainGossip, Client};
use neuroshard_network::{
    NetworkConfig, NetworkEvent, NetworkKeypair, Offence, Protocol, Transport,
};
use neuroshard_primitives::Keypair;
use neuroshard_serving::server::ShardService;
use neuroshard_serving::{ShardDirectory, ShardNetwork};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Network settings from the command line.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    pub listen: Vec<neuroshard_network::Multiaddr>,
    pub bootnodes: Vec<neuroshard_network::Multiaddr>,
    /// Fault injection for tests: the file naming the peers this node is partitioned
    /// from ([`crate::partition::follow_file`]).
    #[cfg(feature = "fault-injection")]
    pub fault_partition_file: Option<std::path::PathBuf>,
    /// Fault injection for tests: gossip a second, differently sealed copy of every
    /// block this node authors (an equivocation its peers must catch and report).
    #[cfg(feature = "fault-injection")]
    pub fault_equivocate: bool,
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
    let (network, events) = neuroshard_network::start(NetworkConfig {
        keypair,
        listen: config.listen.clone(),
        bootnodes: config.bootnodes.clone(),
        genesis: client.genesis_hash(),
        behaviour: Default::default(),
        transport: Transport::Tcp,
    })
    .await?;
    info!(peer_id = %network.local_peer_id(), "p2p network started");
    let chain = ChainGossip::new(client, network.clone(), key, validator);
    #[cfg(feature = "fault-injection")]
    let chain = chain.with_fault_equivocate(config.fault_equivocate);
    let shards = ShardNetwork {
        directory: Arc::new(ShardDirectory::new(
            network.clone(),
            model.hash,
            model.num_layers,
        )),
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

/// Routes network events to the chain and the shard service.
async fn dispatch(
    chain: ChainGossip,
    service: ShardService,
    mut events: mpsc::Receiver<NetworkEvent>,
) {
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
                let (chain, service) = (chain.clone(), service.clone());
                tokio::spawn(async move {
                    let answer = match protocol {
                        Protocol::Sync => chain.answer_sync(&data),
                        Protocol::Activations => service.answer(data).await,
                    };
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
