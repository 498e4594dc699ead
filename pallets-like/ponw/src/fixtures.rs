//! Test fixtures: the PoNW parameters and genesis state the tests of this pallet, the
//! training pallet, the runtime and the training crate build on. Built for this crate's
//! tests and, through the `test-fixtures` feature, for the tests of the crates above it
//! (only their dev-dependencies enable it: production builds carry none of it).
//!
//! A test states the values it depends on as overrides of [`params`]
//! (`Params { worker_bond: 0, ..fixtures::params(model) }`).

use crate::{balances, build_genesis, escrow, ModelInfo, Params, Result};
use neuroshard_primitives::model_chunks::{ChunkTree, LayerChunks};
use neuroshard_primitives::{AccountId, Balance, Hash, LayerRange, UNIT};
use neuroshard_support::{Overlay, StateDb};

/// Canonical ranges of 10 layers (the last one shorter): 0-10, 10-20, 20-30 for 30.
pub fn tiles(num_layers: u16) -> Vec<LayerRange> {
    (0..num_layers)
        .step_by(10)
        .filter_map(|start| LayerRange::new(start, (start + 10).min(num_layers)).ok())
        .collect()
}

/// A model whose file is never read: each layer's chunk root is its hash, one chunk of 1
/// KiB (for tests that never check proof of possession).
pub fn model(hash: Hash, num_layers: u16) -> ModelInfo {
    ModelInfo {
        hash,
        num_layers,
        shards: tiles(num_layers),
        layer_chunks: vec![
            LayerChunks {
                root: hash,
                num_chunks: 1
            };
            usize::from(num_layers)
        ],
        chunk_size: 1024,
    }
}

/// A stand-in model file's bytes cut into `num_layers` layers of (nearly) equal size:
/// what tests answer possession challenges from.
pub fn layer_bytes(file: &[u8], num_layers: u16) -> Vec<Vec<u8>> {
    let n = usize::from(num_layers.max(1));
    let size = file.len().div_ceil(n).max(1);
    let mut layers: Vec<Vec<u8>> = file.chunks(size).map(<[u8]>::to_vec).collect();
    layers.resize(n, vec![0]);
    layers
}

/// The chunk trees of `layers` (see [`layer_bytes`]).
pub fn layer_trees(layers: &[Vec<u8>], chunk_size: u32) -> Vec<ChunkTree> {
    layers
        .iter()
        .map(|bytes| ChunkTree::from_reader(&bytes[..], chunk_size).expect("in memory"))
        .collect()
}

/// A model whose layers' chunks are `trees`, one per layer (for tests that answer
/// liveness challenges from the bytes).
pub fn model_with_chunks(hash: Hash, trees: &[ChunkTree]) -> ModelInfo {
    let num_layers = trees.len() as u16;
    ModelInfo {
        hash,
        num_layers,
        shards: tiles(num_layers),
        layer_chunks: trees.iter().map(LayerChunks::from).collect(),
        chunk_size: trees.first().map_or(1024, ChunkTree::chunk_size),
    }
}

/// The chunk `challenge` names, with its Merkle path, cut from `layers` (see
/// [`layer_bytes`]) whose trees are `trees`.
pub fn answer(
    challenge: &crate::Challenge,
    layers: &[Vec<u8>],
    trees: &[ChunkTree],
) -> (Vec<u8>, Vec<Option<Hash>>) {
    let layer = usize::from(challenge.layer);
    let (bytes, tree) = (&layers[layer], &trees[layer]);
    let range = tree.chunk_range(challenge.chunk_index);
    let end = (range.end as usize).min(bytes.len());
    let start = (range.start as usize).min(end);
    (
        bytes[start..end].to_vec(),
        tree.proof(challenge.chunk_index),
    )
}

/// Parameters paying for `model`, with these defaults:
/// - rewards: 0.1 NSHD per token through the whole model, 1 NSHD per uptime minute;
/// - receipts: accepted for one epoch after their own, at most 100 a batch, at most 4
///   shards a worker;
/// - fees: a client pays 0.2 NSHD per token through the whole model, half of it burned
///   (so self-dealing does not pay); an escrow is released 5 blocks after the request;
/// - bonds: 100 NSHD per worker, 50 NSHD slashed per failed spot check, no receipt
///   sampled for checks (0 permill) and 10 blocks to answer one.
pub fn params(model: ModelInfo) -> Params {
    Params {
        model,
        token_reward: UNIT / 10,
        uptime_reward: UNIT,
        receipt_epoch_window: 1,
        max_receipts_per_batch: 100,
        max_shards_per_worker: 4,
        client_fee_per_token: UNIT / 5,
        fee_burn_permill: 500_000,
        escrow_release_blocks: 5,
        worker_bond: 100 * UNIT,
        spot_check_permill: 0,
        spot_check_blocks: 10,
        spot_check_slash: 50 * UNIT,
        probe: crate::ProbeParams::default(),
        capacity: Default::default(),
    }
}

/// A genesis state of the balances and PoNW pallets, built in this order: the funded
/// accounts (with [`balances::fixtures::params`]), the PoNW parameters and the workers
/// (each reserving its bond from its funds), then the client escrows (taken from the
/// clients' funds).
#[derive(Clone, Debug)]
pub struct Genesis {
    params: Params,
    funded: Vec<(AccountId, Balance)>,
    workers: Vec<(AccountId, Vec<LayerRange>)>,
    escrows: Vec<(AccountId, Balance)>,
}

impl Genesis {
    /// Nobody funded, no worker, no escrow.
    pub fn new(params: Params) -> Self {
        Self {
            params,
            funded: Vec::new(),
            workers: Vec::new(),
            escrows: Vec::new(),
        }
    }

    /// Endows `who` with `amount` free balance.
    pub fn fund(mut self, who: AccountId, amount: Balance) -> Self {
        self.funded.push((who, amount));
        self
    }

    /// Registers `who` as a worker serving `shards` (its bond must be funded).
    pub fn worker(mut self, who: AccountId, shards: Vec<LayerRange>) -> Self {
        self.workers.push((who, shards));
        self
    }

    /// Deposits `amount` of `who`'s funds as its client escrow.
    pub fn escrow(mut self, who: AccountId, amount: Balance) -> Self {
        self.escrows.push((who, amount));
        self
    }

    /// Writes the genesis into `overlay` (for callers that add their own pallets' genesis).
    pub fn build_into(&self, overlay: &mut Overlay<'_>) -> Result<()> {
        balances::build_genesis(overlay, &balances::fixtures::params(), &self.funded)?;
        build_genesis(overlay, &self.params, &self.workers)?;
        for (who, amount) in &self.escrows {
            escrow::deposit(overlay, who, *amount)?;
        }
        Ok(())
    }

    /// The genesis state (panics if the fixture is inconsistent, e.g. a worker's bond
    /// is not funded).
    pub fn build(&self) -> StateDb {
        let mut state = StateDb::new();
        state
            .commit(|o| self.build_into(o))
            .expect("the fixture genesis builds");
        state
    }
}

/// The commitment a correct run of capacity job `j` from `seed` produces in the tests: a
/// fixed function of the job standing for the shard's output (the runtime never runs the
/// model, it only compares commitments).
pub fn capacity_commitment(seed: &Hash, j: u32, positions: u32) -> Vec<u8> {
    use neuroshard_primitives::commitment::{ActivationCommitment, PositionTopK};
    use parity_scale_codec::Encode;
    let d = neuroshard_primitives::blake2_256(&(seed, j).encode());
    let per: Vec<PositionTopK> = (0..positions as usize)
        .map(|i| PositionTopK {
            norm: 1.0 + f32::from(d[i % 32]) / 64.0,
            top: (0..4u16)
                .map(|k| (k * 7 + u16::from(d[(i + 1) % 32]), 4.0 - f32::from(k)))
                .collect(),
        })
        .collect();
    ActivationCommitment::from_positions(0, &per).encode()
}
