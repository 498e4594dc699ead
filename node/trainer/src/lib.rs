//! Proof of Training in the node: the holders of a shard train its LoRA adapter together
//! (DiLoCo rounds, `neuroshard_training`), with the chain as the round's clock and
//! referee and the shard protocol moving the bytes.
//!
//! A round of a trained shard, on every holder ([`holder`]):
//! 1. train from the chain's current adapter version on the windows of the shared pool
//!    assigned to this (worker, round), sign a gradient receipt and submit it: its
//!    pseudo-gradient hash is the commitment, the payload stays private;
//! 2. once the round's collection window is over (`collect_blocks` after its first
//!    receipt) and final, reveal: put the pseudo-gradient on the
//!    [`board::TrainingBoard`] (peers fetch it from there), fetch the pseudo-gradient of
//!    every receipt the chain recorded, from the board or from peers, aggregate them
//!    with the robust rule, take the outer step and report the result; a majority of
//!    identical reports closes the round on chain, and the validator drawn for it
//!    verifies it ([`verify`]) before the accepted receipts are paid and the version is
//!    adopted for serving;
//! 3. a holder whose adapter is not the one the chain recorded (it restarted, missed the
//!    window or was outvoted) resumes from a peer's snapshot of that version.
//!
//! Every node that serves a trained shard, training or not, serves the adapter version
//! the chain recorded last ([`follow`]), and receipts name the version they ran, so spot
//! checks re-run the same weights ([`adapter_weights`]).
//!
//! The hyper-parameters ([`trainer_config`], [`lora_config`], [`SEQ`]) are part of the
//! protocol: holders with other values compute other adapter versions and are outvoted.

pub mod board;
mod follow;
mod holder;
mod verify;

pub use follow::follow_adapters;
pub use holder::run_holder;
pub use verify::verify_rounds;

use anyhow::Context;
use board::TrainingBoard;
use neuroshard_client::Client;
use neuroshard_inference::weights::ModelWeights;
use neuroshard_primitives::{AccountId, Hash, Keypair, LayerRange};
use neuroshard_serving::protocol::{ask, ShardReply, TrainingCall, TrainingReply};
use neuroshard_serving::ShardNetwork;
use neuroshard_training::codec;
use neuroshard_training::{
    merge_adapter, AdapterLayout, AdapterSnapshot, Contribution, InnerConfig, LoraConfig,
    TrainerConfig,
};
use std::sync::Arc;

/// Tokens predicted per training window.
pub const SEQ: usize = 32;
/// Most windows of held-out text a holder scores its adapter on.
pub const MAX_WINDOWS: usize = 12;
/// Windows of the shared training pool (the training corpus) every (worker, round)
/// assignment is drawn from; the verifier replays on the same pool.
pub const POOL_WINDOWS: usize = 36;
/// Largest pseudo-gradient or snapshot accepted from a peer.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// The DiLoCo hyper-parameters every holder uses.
pub fn trainer_config() -> TrainerConfig {
    TrainerConfig {
        inner: InnerConfig {
            steps: 4,
            batch: 2,
            lr: 1e-3,
            weight_decay: 0.0,
        },
        max_payload: MAX_PAYLOAD,
        ..TrainerConfig::default()
    }
}

/// The adapter every trained shard gets: rank 8, alpha 16 on all seven projections.
pub fn lora_config() -> LoraConfig {
    LoraConfig::default()
}

/// What `--train` asks of a node.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The served layer range whose adapter this node trains.
    pub layers: LayerRange,
    /// Stop once the shard's round on chain reaches this (`None`: train for as long as
    /// the node runs).
    pub rounds: Option<u32>,
    /// Fault injection: scale this holder's pseudo-gradients by this factor.
    #[cfg(feature = "fault-injection")]
    pub poison: Option<f32>,
    /// Fault injection: after each outer step, scale the adapter by this factor and
    /// report (and serve the snapshot of) that version.
    #[cfg(feature = "fault-injection")]
    pub poison_adapter: Option<f32>,
}

impl TrainOptions {
    /// The factor this holder's pseudo-gradients are scaled by (fault injection; always
    /// `None` in a production build).
    pub fn poison(&self) -> Option<f32> {
        #[cfg(feature = "fault-injection")]
        return self.poison;
        #[cfg(not(feature = "fault-injection"))]
        None
    }

    /// The factor this holder scales its adapter by after each outer step (fault
    /// injection; always `None` in a production build).
    pub fn poison_adapter(&self) -> Option<f32> {
        #[cfg(feature = "fault-injection")]
        return self.poison_adapter;
        #[cfg(not(feature = "fault-injection"))]
        None
    }
}

/// What the training tasks share.
#[derive(Clone)]
pub struct TrainingContext {
    pub chain: Arc<Client>,
    pub key: Keypair,
    pub model: Hash,
    /// The whole model, without adapters.
    pub base: ModelWeights,
    pub board: Arc<TrainingBoard>,
    /// The network (`None`: a node without networking).
    pub net: Option<ShardNetwork>,
}

impl TrainingContext {
    pub fn account(&self) -> AccountId {
        use sp_core::Pair as _;
        self.key.public().into()
    }

    /// The adapter layout of a shard.
    pub fn layout(&self, layers: LayerRange) -> anyhow::Result<AdapterLayout> {
        let range = layers.start as usize..layers.end as usize;
        Ok(AdapterLayout::new(&self.base.config, range, lora_config())?)
    }

    /// Peers announcing `layers` (the worker `first`'s peers first).
    fn peers_for(
        &self,
        layers: LayerRange,
        first: Option<&AccountId>,
    ) -> Vec<neuroshard_network::PeerId> {
        let Some(net) = &self.net else {
            return Vec::new();
        };
        let mut view: Vec<_> = net
            .directory
            .snapshot()
            .into_iter()
            .filter(|p| !p.local && p.shards.contains(&layers))
            .collect();
        view.sort_by_key(|p| Some(&p.account) != first);
        view.into_iter().map(|p| p.peer).collect()
    }

    /// The contribution behind pseudo-gradient `hash` of a round: from the board, else
    /// from the first peer that has it (checked against its receipt and kept on the
    /// board for others).
    pub async fn contribution(
        &self,
        layers: LayerRange,
        round: u32,
        hash: &Hash,
        worker: &AccountId,
    ) -> Option<Contribution> {
        if let Some(c) = self.board.contribution(self.model, layers, round, hash) {
            return Some(c);
        }
        let net = self.net.as_ref()?;
        let call = TrainingCall::Gradient {
            model: self.model,
            layers,
            round,
            pseudo_gradient: *hash,
        };
        for peer in self.peers_for(layers, Some(worker)) {
            let Ok(ShardReply::Training(TrainingReply::Gradient(Some((receipt, payload))))) =
                ask(&net.network, peer, call.clone()).await
            else {
                continue;
            };
            let b = &receipt.body;
            let genuine = b.pseudo_gradient == *hash
                && codec::hash(&payload) == *hash
                && b.round == round
                && b.layers == layers
                && payload.len() <= MAX_PAYLOAD
                && receipt.signature_is_valid();
            if genuine {
                let c = Contribution { receipt, payload };
                self.board.insert_contribution(c.clone());
                return Some(c);
            }
            net.network
                .penalise(peer, neuroshard_network::Offence::Malformed);
        }
        None
    }

    /// The snapshot of adapter `version` of a shard: from the board, else from a peer
    /// (verified against the version, then kept on the board).
    pub async fn snapshot(
        &self,
        layers: LayerRange,
        version: &Hash,
        first: Option<&AccountId>,
    ) -> anyhow::Result<AdapterSnapshot> {
        if let Some(s) = self.board.snapshot(self.model, layers, version) {
            return Ok(s);
        }
        let layout = self.layout(layers)?;
        // A version this node kept on disk (it restarted since).
        if let Some(bytes) = self.board.snapshot_bytes(self.model, layers, version) {
            let kept = AdapterSnapshot::decode(&bytes, layout.len, MAX_PAYLOAD)
                .and_then(|s| s.verify(&layout, version).map(|()| s));
            if let Ok(s) = kept {
                self.board
                    .insert_snapshot(self.model, layers, *version, s.clone(), bytes);
                return Ok(s);
            }
        }
        let net = self
            .net
            .as_ref()
            .context("no network to fetch the adapter from")?;
        let call = TrainingCall::Adapter {
            model: self.model,
            layers,
            version: *version,
        };
        for peer in self.peers_for(layers, first) {
            let Ok(ShardReply::Training(TrainingReply::Adapter(Some(bytes)))) =
                ask(&net.network, peer, call.clone()).await
            else {
                continue;
            };
            let checked = AdapterSnapshot::decode(&bytes, layout.len, MAX_PAYLOAD)
                .and_then(|s| s.verify(&layout, version).map(|()| s));
            match checked {
                Ok(s) => {
                    self.board
                        .insert_snapshot(self.model, layers, *version, s.clone(), bytes);
                    return Ok(s);
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "bad adapter snapshot");
                    net.network
                        .penalise(peer, neuroshard_network::Offence::Malformed);
                }
            }
        }
        anyhow::bail!(
            "no peer has adapter version {}",
            neuroshard_client::hex_hash(version)
        )
    }
}

/// The weights of `layers` of `base` with adapter `snapshot` merged in (blocking).
pub fn adapter_weights(
    base: &ModelWeights,
    layout: &AdapterLayout,
    layers: LayerRange,
    snapshot: &AdapterSnapshot,
) -> anyhow::Result<ModelWeights> {
    let slice = base.slice(layers.start as usize..layers.end as usize)?;
    Ok(merge_adapter(&slice, layout, &snapshot.theta)?)
}
