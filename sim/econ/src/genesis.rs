//! The simulated chain's genesis: the dev chain spec's parameters as they ship (fees,
//! rewards, bonds, sampling, slashes, epoch and slot length), with a stand-in model file
//! of the same 30 layers and canonical ranges in place of the real weights (the runtime
//! only ever sees the file's chunk roots, for the possession half of uptime; the
//! agents answer challenges from the stand-in bytes). Four validators with equal bonds;
//! the last one colludes.

use crate::agents::{Agent, Strategy};
use crate::chain::Key;
use anyhow::{anyhow, Result};
use neuroshard_primitives::model_chunks::{ChunkTree, LayerChunks};
use neuroshard_primitives::{blake2_256, AccountId, Balance, Hash, LayerRange, UNIT};
use neuroshard_runtime::ponw::ModelInfo;
use neuroshard_runtime::{GenesisConfig, RuntimeParams};

/// Validators (equal bonds); the last one is the colluder.
pub const VALIDATORS: usize = 4;
/// Each validator's staking bond.
pub const VALIDATOR_BOND: Balance = 1_000 * UNIT;

/// The stand-in model: its bytes per layer and their chunk trees.
pub struct StandIn {
    pub hash: Hash,
    pub layers: Vec<Vec<u8>>,
    pub trees: Vec<ChunkTree>,
    pub shards: Vec<LayerRange>,
}

impl StandIn {
    /// 30 layers of 4 KiB (1 KiB chunks), cut into the dev chain's canonical ranges.
    pub fn new(shards: Vec<LayerRange>, num_layers: u16) -> Result<Self> {
        let layers: Vec<Vec<u8>> = (0..num_layers)
            .map(|l| {
                (0..4096u32)
                    .map(|i| (i.wrapping_mul(31) ^ (u32::from(l) * 7)) as u8)
                    .collect()
            })
            .collect();
        let trees = layers
            .iter()
            .map(|bytes| ChunkTree::from_reader(&bytes[..], 1024))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            hash: blake2_256(b"neuroshard/econ/stand-in model"),
            layers,
            trees,
            shards,
        })
    }

    fn model(&self) -> ModelInfo {
        ModelInfo {
            hash: self.hash,
            num_layers: self.layers.len() as u16,
            layer_chunks: self.trees.iter().map(LayerChunks::from).collect(),
            chunk_size: 1024,
            shards: self.shards.clone(),
        }
    }

    /// The chunk `layer`/`index` with its Merkle path.
    pub fn answer(&self, layer: u16, index: u64) -> (Vec<u8>, Vec<Option<Hash>>) {
        let (bytes, tree) = (
            &self.layers[usize::from(layer)],
            &self.trees[usize::from(layer)],
        );
        let range = tree.chunk_range(index);
        let end = (range.end as usize).min(bytes.len());
        let start = (range.start as usize).min(end);
        (bytes[start..end].to_vec(), tree.proof(index))
    }
}

/// What each account is endowed with.
#[derive(Clone, Copy, Debug)]
pub struct Endowments {
    /// A worker account: its bond, a second bond to re-register with, and fees.
    pub worker: Balance,
    /// A client account: its escrow for the whole run and fees.
    pub client: Balance,
    pub validator: Balance,
}

/// The dev chain's parameters with the stand-in model.
pub fn dev_params(stand_in_shards: &mut Vec<LayerRange>) -> Result<RuntimeParams> {
    let spec = neuroshard_chain_spec::load("dev").map_err(|e| anyhow!("{e}"))?;
    let params = spec.genesis.params;
    *stand_in_shards = params.ponw.model.shards.clone();
    Ok(params)
}

/// The genesis: parameters, validators, agents' endowments, workers registered.
pub fn config(
    mut params: RuntimeParams,
    stand_in: &StandIn,
    validators: &[Key],
    agents: &[Agent],
    endow: Endowments,
) -> GenesisConfig {
    params.ponw.model = stand_in.model();
    let mut balances: Vec<(AccountId, Balance)> = validators
        .iter()
        .map(|v| (v.account.clone(), endow.validator))
        .collect();
    let mut workers = Vec::new();
    for agent in agents {
        for w in &agent.workers {
            balances.push((w.account.clone(), endow.worker));
            workers.push((w.account.clone(), shards_of(&agent.strategy, stand_in)));
        }
        if let Some(c) = &agent.client {
            balances.push((c.account.clone(), endow.client));
        }
    }
    GenesisConfig {
        params,
        balances,
        validators: validators
            .iter()
            .map(|v| (v.account.clone(), VALIDATOR_BOND))
            .collect(),
        workers,
    }
}

/// The ranges a strategy's workers register: their own range, or the whole model for
/// self-dealers (paid the full token reward) and uptime farmers.
pub fn shards_of(strategy: &Strategy, stand_in: &StandIn) -> Vec<LayerRange> {
    match strategy {
        Strategy::Trainer | Strategy::TrainingFaker { .. } => {
            vec![stand_in.shards[crate::agents::MIDDLE]]
        }
        _ => match strategy.serves_range() {
            Some(range) => vec![stand_in.shards[range]],
            None => stand_in.shards.clone(),
        },
    }
}
