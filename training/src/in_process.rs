//! Several holders of one shard training in one process: building them on the shared
//! training pool (each trains on the windows assigned to it, see
//! [`crate::gauntlet::assignment`]) and running a round on all of them in parallel threads through
//! an [`InProcessExchange`]. Used by the tests and by `neuroshard bench training`.

use crate::corpus;
use crate::dataset::Dataset;
use crate::error::{Result, TrainingError};
use crate::exchange::InProcessExchange;
use crate::lora::{AdapterLayout, LoraConfig};
use crate::model::FrozenModel;
use crate::trainer::{RoundOutcome, ShardTrainer, TrainerConfig};
use neuroshard_primitives::{Hash, Keypair};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds one [`ShardTrainer`] per key, each on the training corpus as the pool its
/// assignments are drawn from (`tokenize` turns text into the model's token ids).
#[allow(clippy::too_many_arguments)]
pub fn build_holders(
    model: Arc<FrozenModel>,
    model_hash: Hash,
    keys: &[Keypair],
    lora: &LoraConfig,
    config: &TrainerConfig,
    tokenize: &dyn Fn(&str) -> Result<Vec<u32>>,
    seq: usize,
    max_windows: usize,
) -> Result<Vec<ShardTrainer>> {
    let layout = AdapterLayout::new(model.config(), model.shard(), lora.clone())?;
    let tokens = tokenize(corpus::TRAIN)?;
    keys.iter()
        .map(|key| {
            let local = Dataset::new(&model, &tokens, seq, max_windows)?;
            ShardTrainer::new(
                key.clone(),
                model_hash,
                model.clone(),
                layout.clone(),
                local,
                config.clone(),
            )
        })
        .collect()
}

/// Runs one round on every trainer in parallel threads through `exchange`; returns each
/// holder's outcome and the round's wall time.
pub fn run_round_in_process(
    trainers: &mut [ShardTrainer],
    exchange: &InProcessExchange,
) -> Result<(Vec<RoundOutcome>, Duration)> {
    let expected = trainers.len();
    let start = Instant::now();
    let results: Vec<Result<RoundOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = trainers
            .iter_mut()
            .map(|t| {
                s.spawn(move || {
                    t.run_round(exchange, expected, Duration::from_secs(600))
                        .map(|(_, o)| o)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(TrainingError::Exchange("trainer panicked".into())))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    Ok((results.into_iter().collect::<Result<Vec<_>>>()?, elapsed))
}
