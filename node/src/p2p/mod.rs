//! The node on the network: starts the libp2p service (`neuroshard-network`) with the
//! node's persistent network key, and glues it to the chain and the shard worker:
//! - gossip: transactions submitted here are published, transactions and blocks from
//!   peers are checked by the client before gossipsub forwards them ([`chain_sync`]);
//! - requests: shard calls are answered by this node's shards ([`shard_wire`]), sync
//!   requests from the canonical chain;
//! - discovery: while it serves shards the node keeps its signed provider record in the
//!   DHT fresh, and a [`ShardDirectory`] keeps the latest view of everybody's, for
//!   routing ([`routing`]) and the `neuroshard_shards` RPC.

pub mod chain_sync;
pub mod directory;
pub mod equivocation;
pub mod partition;
pub mod routing;
pub mod shard_wire;

use crate::client::Client;
use crate::finality::{FinalityGadget, Vote, VoteOutcome};
use anyhow::Context;
pub use directory::ShardDirectory;
use equivocation::EquivocationDetector;
use neuroshard_network::{
    NetworkConfig, NetworkEvent, NetworkHandle, NetworkKeypair, PeerId, Protocol, Topic, Verdict,
};
use neuroshard_primitives::{AccountId, Block, Keypair, SignedExtrinsic};
use neuroshard_runtime::TransactionError;
use parity_scale_codec::{DecodeAll, Encode};
use parking_lot::RwLock;
use shard_wire::ShardServer;
use sp_core::Pair as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Network settings from the command line.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    pub listen: Vec<neuroshard_network::Multiaddr>,
    pub bootnodes: Vec<neuroshard_network::Multiaddr>,
    /// Fault injection for tests: gossip a second, differently sealed copy of every
    /// block this node authors (an equivocation its peers must catch and report).
    pub fault_equivocate: bool,
    /// Fault injection for tests: answer every forward call from a peer with an error (a
    /// freeloader that stays online, holds the model and heartbeats, but serves nobody);
    /// its liveness probes fail, so it earns no uptime.
    pub fault_refuse_requests: bool,
    /// Fault injection for tests: the file naming the peers this node is partitioned
    /// from ([`partition::follow_file`]).
    pub fault_partition_file: Option<PathBuf>,
}

/// The running network glue, shared by the worker, the RPC and the API.
#[derive(Clone)]
pub struct P2p {
    pub network: NetworkHandle,
    pub directory: Arc<ShardDirectory>,
    /// Vote-based finality (`None` on single-authority chains, final instantly).
    pub finality: Option<Arc<FinalityGadget>>,
    equivocations: Arc<EquivocationDetector>,
    /// The node's chain key, used to report equivocations (and, with the fault flag,
    /// to commit one).
    key: Option<Keypair>,
    fault_equivocate: bool,
    fault_refuse_requests: bool,
    /// This node's shards, answering peers' calls once the model is loaded.
    shard_server: Arc<RwLock<Option<Arc<ShardServer>>>>,
}

impl P2p {
    /// With the fault flag, a resealed copy of a block this node authored (sr25519
    /// signatures are randomised, so the copy has another hash).
    fn equivocating_twin(&self, block: &Block) -> Option<Block> {
        let key = self.key.as_ref().filter(|_| self.fault_equivocate)?;
        if block.header.author != AccountId::from(key.public()) {
            return None;
        }
        let mut twin = block.clone();
        twin.header.seal_with(key);
        Some(twin)
    }

    /// Lets peers use this node's shards.
    pub fn serve_shards(&self, server: Arc<ShardServer>) {
        *self.shard_server.write() = Some(server);
    }
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

/// Starts the network and the tasks that glue it to `client`.
pub async fn start(
    config: P2pConfig,
    base_path: &Path,
    client: Arc<Client>,
    key: Option<Keypair>,
    validator: bool,
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
    })
    .await?;
    info!(peer_id = %network.local_peer_id(), "p2p network started");
    let p2p = P2p {
        directory: Arc::new(ShardDirectory::new(
            network.clone(),
            model.hash,
            model.num_layers,
        )),
        finality: (!client.instant_finality()).then(|| {
            let voter = key.clone().filter(|_| validator);
            Arc::new(FinalityGadget::new(client.clone(), voter))
        }),
        equivocations: Arc::new(EquivocationDetector::default()),
        key,
        fault_equivocate: config.fault_equivocate,
        fault_refuse_requests: config.fault_refuse_requests,
        network,
        shard_server: Arc::new(RwLock::new(None)),
    };
    tokio::spawn(dispatch(p2p.clone(), client.clone(), events));
    tokio::spawn(publish_local(p2p.clone(), client.clone(), shutdown.clone()));
    tokio::spawn(periodic_sync(p2p.network.clone(), client, shutdown.clone()));
    if let Some(path) = config.fault_partition_file.clone() {
        tokio::spawn(partition::follow_file(
            p2p.network.clone(),
            path,
            shutdown.clone(),
        ));
    }
    tokio::spawn(p2p.directory.clone().refresh_loop(shutdown));
    Ok(p2p)
}

/// Routes network events to the chain and the shard server.
async fn dispatch(p2p: P2p, client: Arc<Client>, mut events: mpsc::Receiver<NetworkEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            NetworkEvent::Gossip {
                topic,
                source,
                id,
                data,
            } => {
                let (verdict, sync) = match topic {
                    Topic::Transactions => (on_gossip_tx(&client, &data), false),
                    Topic::Blocks => on_gossip_block(&p2p, &client, data).await,
                    Topic::Votes => (on_gossip_vote(&p2p, &data), false),
                    // Receipts travel inside transactions.
                    Topic::Receipts => (Verdict::Ignore, false),
                };
                p2p.network.validate(id, source, verdict);
                if sync {
                    let (client, network) = (client.clone(), p2p.network.clone());
                    tokio::spawn(
                        async move { chain_sync::sync_from(&client, &network, source).await },
                    );
                }
            }
            NetworkEvent::Request {
                protocol,
                peer,
                data,
                reply,
            } => {
                let (p2p, client) = (p2p.clone(), client.clone());
                tokio::spawn(async move {
                    let answer = match protocol {
                        Protocol::Sync => chain_sync::answer(&client, &data),
                        Protocol::Activations => answer_shard_call(&p2p, data).await,
                    };
                    match answer {
                        Some(bytes) => p2p.network.respond(reply, bytes),
                        None => {
                            warn!(%peer, ?protocol, "undecodable request dropped");
                            p2p.network
                                .penalise(peer, neuroshard_network::Offence::Malformed);
                        }
                    }
                });
            }
            NetworkEvent::PeerConnected(peer) => {
                let (client, network) = (client.clone(), p2p.network.clone());
                tokio::spawn(async move { chain_sync::sync_from(&client, &network, peer).await });
            }
            NetworkEvent::PeerDisconnected(_) => {}
        }
    }
}

fn on_gossip_tx(client: &Client, data: &[u8]) -> Verdict {
    let Ok(xt) = SignedExtrinsic::decode_all(&mut &data[..]) else {
        return Verdict::Reject;
    };
    match client.submit_from_network(xt) {
        Ok(_) => Verdict::Accept,
        // Duplicates, stale nonces and full pools are not the sender's fault; a bad
        // signature or an undecodable call is.
        Err(crate::client::SubmitError::Invalid(
            TransactionError::BadSignature | TransactionError::TooLarge { .. },
        )) => Verdict::Reject,
        Err(_) => Verdict::Ignore,
    }
}

async fn on_gossip_block(p2p: &P2p, client: &Arc<Client>, data: Vec<u8>) -> (Verdict, bool) {
    let Ok(block) = Block::decode_all(&mut &data[..]) else {
        return (Verdict::Reject, false);
    };
    if let Some(first) = p2p.equivocations.observe(&block.header) {
        if let Some(key) = &p2p.key {
            EquivocationDetector::report(client, key, first, block.header.clone());
        }
    }
    chain_sync::on_gossip_block(client, block).await
}

fn on_gossip_vote(p2p: &P2p, data: &[u8]) -> Verdict {
    let Some(finality) = &p2p.finality else {
        return Verdict::Ignore;
    };
    let Ok(vote) = Vote::decode_all(&mut &data[..]) else {
        return Verdict::Reject;
    };
    match finality.on_vote(vote) {
        VoteOutcome::Counted => Verdict::Accept,
        VoteOutcome::Stale => Verdict::Ignore,
        VoteOutcome::Invalid => Verdict::Reject,
    }
}

async fn answer_shard_call(p2p: &P2p, data: Vec<u8>) -> Option<Vec<u8>> {
    let call = shard_wire::ShardCall::decode_all(&mut &data[..]).ok()?;
    if p2p.fault_refuse_requests && matches!(call, shard_wire::ShardCall::Forward(_)) {
        return Some(shard_wire::ShardReply::Error("busy".into()).encode());
    }
    let server = p2p.shard_server.read().clone();
    let Some(server) = server else {
        return Some(
            shard_wire::ShardReply::Error("this node serves no shards (yet)".into()).encode(),
        );
    };
    tokio::task::spawn_blocking(move || server.answer(call).encode())
        .await
        .ok()
}

/// Publishes what this node submits and authors, and its finality votes.
async fn publish_local(p2p: P2p, client: Arc<Client>, mut shutdown: watch::Receiver<bool>) {
    let network = p2p.network.clone();
    let mut txs = client.subscribe_local_extrinsics();
    let mut heads = client.subscribe_new_heads();
    loop {
        tokio::select! {
            tx = txs.recv() => match tx {
                Ok(xt) => network.publish(Topic::Transactions, xt.encode()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => warn!(n, "gossip of local transactions lagged"),
                Err(_) => return,
            },
            head = heads.recv() => match head {
                Ok(header) => {
                    // Gossip every new head: ours reach the network, imported ones are
                    // deduplicated by content (message ids are content hashes).
                    if let Ok(Some(block)) = client.block(&header.hash()) {
                        p2p.equivocations.observe(&block.header);
                        network.publish(Topic::Blocks, block.encode());
                        if let Some(twin) = p2p.equivocating_twin(&block) {
                            warn!(slot = twin.header.slot, "fault injection: gossiping a second block for our slot");
                            network.publish(Topic::Blocks, twin.encode());
                        }
                    }
                    if let Some(vote) = p2p.finality.as_ref().and_then(|f| f.vote_for_best()) {
                        network.publish(Topic::Votes, vote.encode());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Every few seconds asks a random connected peer for blocks after our head, so a node
/// that missed gossip (or started late) catches up even when no new block arrives.
async fn periodic_sync(
    network: NetworkHandle,
    client: Arc<Client>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = shutdown.changed() => return,
        }
        let Ok(peers) = network.peers().await else {
            return;
        };
        if peers.is_empty() {
            continue;
        }
        let peer: PeerId = peers[rand::random::<usize>() % peers.len()].peer;
        chain_sync::sync_from(&client, &network, peer).await;
    }
}
