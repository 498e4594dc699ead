//! Helpers shared by the training tests: the tiny random Llama loaded in memory, a
//! configuration small enough to train in seconds, and holders over it.
#![allow(dead_code)]

use neuroshard_inference::{ModelSource, ModelWeights, Precision};
use neuroshard_primitives::{blake2_256, Hash, Keypair};
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
