//! Helpers shared by the training tests: the tiny random Llama loaded in memory, a
//! configuration small enough to train in seconds, and holders over it.
#![allow(dead_code)]

use neuroshard_inference::{ModelSource, ModelWeights, Precision};
use neuroshard_primitives::{blake2_256, AccountId, Balance, Hash, Keypair, LayerRange};
use neuroshard_support::StateDb;
use neuroshard_training::corpus::byte_tokens;
use neuroshard_training::in_process::build_holders;
use neuroshard_training::{
    FrozenModel, InnerConfig, LoraConfig, RobustRule, ShardTrainer, TrainerConfig,
};
use sp_core::Pair as _;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

pub fn tiny_weights() -> ModelWeights {
    static WEIGHTS: OnceLock<ModelWeights> = OnceLock::new();
    WEIGHTS
        .get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            neuroshard_inference::tiny::write_tiny_llama(d.path(), 7).unwrap();
            ModelWeights::load(
                &ModelSource::Safetensors(d.path().to_path_buf()),
                None,
                Precision::Native,
            )
            .unwrap()
        })
        .clone()
}

pub fn tiny_hash() -> Hash {
    blake2_256(b"tiny")
}

pub fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

pub fn tiny_config() -> TrainerConfig {
    TrainerConfig {
        inner: InnerConfig {
            steps: 6,
            batch: 4,
            lr: 1e-2,
            weight_decay: 0.0,
        },
        rule: RobustRule::default(),
        ..Default::default()
    }
}

pub const SEQ: usize = 32;

pub fn tiny_holders(
    shard: Range<usize>,
    keys: &[Keypair],
) -> (Arc<FrozenModel>, Vec<ShardTrainer>) {
    let model = Arc::new(FrozenModel::new(&tiny_weights(), shard).unwrap());
    let tokenize = |t: &str| Ok(byte_tokens(t));
    let holders = build_holders(
        model.clone(),
        tiny_hash(),
        keys,
        &LoraConfig::default(),
        &tiny_config(),
        &tokenize,
        SEQ,
        64,
    )
    .unwrap();
    (model, holders)
}

/// The chain of a training test: `holders` registered as workers of `layers` (one of the
/// chain's canonical ranges), no bonds, spot checks or collection window, `reward` per
/// verified round.
pub fn chain(holders: &[AccountId], layers: LayerRange, reward: Balance) -> StateDb {
    let pp = neuroshard_ponw::Params {
        // Bonds and spot checks are the PoNW tests' concern.
        worker_bond: 0,
        spot_check_permill: 0,
        spot_check_slash: 0,
        probe: neuroshard_ponw::ProbeParams::default(),
        capacity: neuroshard_ponw::capacity::CapacityParams {
            slash: 0,
            ..Default::default()
        },
        ..neuroshard_ponw::fixtures::params(neuroshard_ponw::ModelInfo {
            // The trained range is one of the chain's canonical ranges.
            shards: [
                (0, layers.start),
                (layers.start, layers.end),
                (layers.end, 6),
            ]
            .into_iter()
            .filter_map(|(a, b)| LayerRange::new(a, b).ok())
            .collect(),
            ..neuroshard_ponw::fixtures::model(tiny_hash(), 6)
        })
    };
    let genesis = holders
        .iter()
        .fold(neuroshard_ponw::fixtures::Genesis::new(pp), |g, h| {
            g.worker(h.clone(), vec![layers])
        });
    let tp = neuroshard_training_pallet::Params {
        training_reward: reward,
        // Reports land in the block after the receipts: no collection window.
        collect_blocks: 0,
        ..neuroshard_training_pallet::fixtures::params()
    };
    neuroshard_training_pallet::fixtures::genesis(&genesis, &tp)
}
