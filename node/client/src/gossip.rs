//! The chain on the network: what the node does with the gossip topics and sync requests
//! that concern the chain, and what it publishes.
//!
//! - transactions from peers are checked by the client before gossipsub forwards them,
//!   with the cheap checks only, off the event loop and within the sending peer's
//!   budget ([`PeerBudget`]); one that is invalid whatever the state (bad signature,
//!   oversized, a sampled receipt signature bad) gets its peer penalised;
//! - blocks from peers are checked for equivocation and imported ([`crate::sync`]); a
//!   block that does not attach starts a sync from its sender;
//! - finality votes go to the [`FinalityGadget`];
//! - sync requests are answered from the canonical chain;
//! - transactions submitted here, blocks authored or imported here and this validator's
//!   votes are published; every few seconds the node asks a random peer for blocks after
//!   its head, so one that missed gossip catches up.
//!
//! The node's event loop (in the binary) routes network events here; the shard protocol
//! is the serving side's.

use crate::client::{Client, SubmitError};
use crate::equivocation::EquivocationDetector;
use crate::finality::{FinalityGadget, Vote, VoteOutcome};
use crate::sync;
use neuroshard_network::{MessageId, NetworkHandle, PeerBudget, PeerId, Topic, Verdict};
use neuroshard_primitives::{Block, Keypair, SignedExtrinsic};
use neuroshard_runtime::TransactionError;
use parity_scale_codec::{DecodeAll, Encode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, warn};

/// Bytes of gossiped transactions per second a peer may have this node check (twice
/// that saved up, two checks at once): a maximal extrinsic a second, where the chain
/// takes a few per block from all peers together.
const TX_CHECK_BYTES_PER_SEC: u64 = 4 << 20;

/// How often a random peer is asked for blocks after our head.
const PERIODIC_SYNC: Duration = Duration::from_secs(3);

/// The chain's gossip and sync on one network.
#[derive(Clone)]
pub struct ChainGossip {
    pub client: Arc<Client>,
    pub network: NetworkHandle,
    /// Vote-based finality (`None` on single-authority chains, final instantly).
    pub finality: Option<Arc<FinalityGadget>>,
    equivocations: Arc<EquivocationDetector>,
    /// What each peer may make this node spend checking its transactions.
    check_budget: Arc<PeerBudget>,
    /// The node's chain key, used to report equivocations (and, with the fault flag,
    /// to commit one).
    key: Option<Keypair>,
    /// Fault injection for tests: gossip a second, differently sealed copy of every
    /// block this node authors (an equivocation its peers must catch and report).
    #[cfg(feature = "fault-injection")]
    fault_equivocate: bool,
}

impl ChainGossip {
    /// The chain side of `network`; a `validator` with a `key` votes for finality.
    pub fn new(
        client: Arc<Client>,
        network: NetworkHandle,
        key: Option<Keypair>,
        validator: bool,
    ) -> Self {
        let finality = (!client.instant_finality()).then(|| {
            let voter = key.clone().filter(|_| validator);
            Arc::new(FinalityGadget::new(client.clone(), voter))
        });
        Self {
            client,
            network,
            finality,
            equivocations: Arc::new(EquivocationDetector::default()),
            check_budget: Arc::new(PeerBudget::new(
                TX_CHECK_BYTES_PER_SEC,
                2 * TX_CHECK_BYTES_PER_SEC,
                2,
            )),
            key,
            #[cfg(feature = "fault-injection")]
            fault_equivocate: false,
        }
    }

    /// Fault injection: also gossip a second, differently sealed copy of every block
    /// this node authors.
    #[cfg(feature = "fault-injection")]
    pub fn with_fault_equivocate(mut self, on: bool) -> Self {
        self.fault_equivocate = on;
        self
    }

    /// Judges a gossip message from `source` on one of the chain's topics and tells
    /// gossipsub; a block that did not attach starts a sync from `source`. Transactions
    /// are checked on the blocking pool, so the event loop goes on with blocks and votes
    /// meanwhile.
    pub async fn on_gossip(&self, topic: Topic, source: PeerId, id: MessageId, data: Vec<u8>) {
        let verdict = match topic {
            Topic::Transactions => return self.check_transaction(source, id, data),
            Topic::Blocks => {
                let (verdict, sync) = self.on_block(data).await;
                if sync {
                    let chain = self.clone();
                    tokio::spawn(async move { chain.sync_from(source).await });
                }
                verdict
            }
            Topic::Votes => self.on_vote(&data),
        };
        self.network.validate(id, source, verdict);
    }

    /// Checks a gossiped transaction off the event loop if `source`'s budget allows;
    /// beyond it the transaction is dropped unchecked (not forwarded, no penalty: an
    /// honest peer may relay a burst).
    fn check_transaction(&self, source: PeerId, id: MessageId, data: Vec<u8>) {
        if !self.check_budget.admit(source, data.len()) {
            debug!(%source, bytes = data.len(), "peer over its transaction check budget: dropped unchecked");
            self.network.validate(id, source, Verdict::Ignore);
            return;
        }
        let chain = self.clone();
        tokio::task::spawn_blocking(move || {
            let verdict = chain.on_transaction(&data);
            chain.check_budget.done(source);
            chain.network.validate(id, source, verdict);
        });
    }

    /// Answers a sync request from the canonical chain (`None`: undecodable).
    pub fn answer_sync(&self, data: &[u8]) -> Option<Vec<u8>> {
        sync::answer(&self.client, data)
    }

    /// Asks `peer` for the blocks after our head and imports them.
    pub async fn sync_from(&self, peer: PeerId) {
        sync::sync_from(&self.client, &self.network, peer).await
    }

    fn on_transaction(&self, data: &[u8]) -> Verdict {
        let Ok(xt) = SignedExtrinsic::decode_all(&mut &data[..]) else {
            return Verdict::Reject;
        };
        match self.client.submit_from_network(xt) {
            Ok(_) => Verdict::Accept,
            // Duplicates, stale nonces, unpayable fees (a balance just spent) and full
            // pools need not be the sender's fault; what is invalid whatever the state
            // is: a bad signature, an oversized extrinsic, a call with a bad part.
            Err(SubmitError::Invalid(
                TransactionError::BadSignature
                | TransactionError::TooLarge { .. }
                | TransactionError::Refuted(_),
            )) => Verdict::Reject,
            Err(_) => Verdict::Ignore,
        }
    }

    async fn on_block(&self, data: Vec<u8>) -> (Verdict, bool) {
        let Ok(block) = Block::decode_all(&mut &data[..]) else {
            return (Verdict::Reject, false);
        };
        if let Some(first) = self.equivocations.observe(&block.header) {
            if let Some(key) = &self.key {
                EquivocationDetector::report(&self.client, key, first, block.header.clone());
            }
        }
        sync::on_gossip_block(&self.client, block).await
    }

    fn on_vote(&self, data: &[u8]) -> Verdict {
        let Some(finality) = &self.finality else {
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

    /// With the fault flag, a resealed copy of a block this node authored (sr25519
    /// signatures are randomised, so the copy has another hash).
    #[cfg(feature = "fault-injection")]
    fn equivocating_twin(&self, block: &Block) -> Option<Block> {
        use sp_core::Pair as _;
        let key = self.key.as_ref().filter(|_| self.fault_equivocate)?;
        if *block.header.author() != neuroshard_primitives::AccountId::from(key.public()) {
            return None;
        }
        let mut twin = block.clone();
        twin.header.seal_with(key);
        Some(twin)
    }

    /// Publishes a new head (and, with the fault flag, its equivocating twin) and this
    /// validator's vote.
    fn publish_head(&self, header: &neuroshard_primitives::Header) {
        // Gossip every new head: ours reach the network, imported ones are deduplicated
        // by content (message ids are content hashes).
        if let Ok(Some(block)) = self.client.block(&header.hash()) {
            self.equivocations.observe(&block.header);
            self.network.publish(Topic::Blocks, block.encode());
            #[cfg(feature = "fault-injection")]
            if let Some(twin) = self.equivocating_twin(&block) {
                warn!(
                    slot = twin.header.slot(),
                    "fault injection: gossiping a second block for our slot"
                );
                self.network.publish(Topic::Blocks, twin.encode());
            }
        }
        if let Some(vote) = self.finality.as_ref().and_then(|f| f.vote_for_best()) {
            self.network.publish(Topic::Votes, vote.encode());
        }
    }

    /// Publishes what this node submits and authors, and its finality votes, until
    /// shutdown.
    pub async fn publish_local(self, mut shutdown: watch::Receiver<bool>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut txs = self.client.subscribe_local_extrinsics();
        let mut heads = self.client.subscribe_new_heads();
        loop {
            tokio::select! {
                tx = txs.recv() => match tx {
                    Ok(xt) => self.network.publish(Topic::Transactions, xt.encode()),
                    Err(RecvError::Lagged(n)) => warn!(n, "gossip of local transactions lagged"),
                    Err(_) => return,
                },
                head = heads.recv() => match head {
                    Ok(header) => self.publish_head(&header),
                    Err(RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Every few seconds asks a random connected peer for blocks after our head, so a
    /// node that missed gossip (or started late) catches up even when no new block
    /// arrives.
    pub async fn periodic_sync(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PERIODIC_SYNC) => {}
                _ = shutdown.changed() => return,
            }
            let Ok(peers) = self.network.peers().await else {
                return;
            };
            if peers.is_empty() {
                continue;
            }
            let peer: PeerId = peers[rand::random::<usize>() % peers.len()].peer;
            self.sync_from(peer).await;
        }
    }
}
