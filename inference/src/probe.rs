//! Capacity probes: the useful-work half of a worker's minute of uptime. From a seed the
//! chain draws (see `ponw::probe_tasks`) a validator builds a prefill-sized input (the
//! chain's `probe.positions`) for one of the worker's shards ([`probe_request`]), sends it
//! as an ordinary shard request and times the answer; for a sample of answers it re-runs
//! the shard on the same input and compares the two outputs with the spot checks'
//! tolerance ([`check_probe`]): the change the layers made to the hidden states, or the
//! logits of the last shard, must match as TOPLOC-style top-k commitments. A worker that
//! refuses, does not hold the layers, or skips them fails.
//!
//! The input is a function of the minute's seed and the probed account, so a provider
//! can tell another account's probe from a client's input ([`ProbeFingerprint`]) and
//! refuse to compute it for a relayer.

use crate::commitment::{position_topk, ActivationCommitment};
use crate::error::{InferenceError, Result};
use crate::executor::{ExecInput, ShardExecutor};
use crate::messages::{Activations, HeadMode, ShardInput, ShardOutput, ShardRequest, WireDType};
use crate::spot_check::{work_topk, CheckOutcome};
use neuroshard_primitives::{blake2_256, Hash, LayerRange, SessionId};
use parity_scale_codec::Encode;

/// Most positions in a probe's input (a provider's largest request).
pub const MAX_PROBE_POSITIONS: usize = 128;

/// Deterministic pseudo-random words from `seed` (blake2 in counter mode).
fn words(seed: &Hash, count: usize) -> Vec<u32> {
    (0..count.div_ceil(8) as u64)
        .flat_map(|block| {
            let digest = blake2_256(&(seed, block).encode());
            let bytes = digest.to_fixed_bytes();
            (0..8).map(move |i| {
                u32::from_le_bytes([
                    bytes[4 * i],
                    bytes[4 * i + 1],
                    bytes[4 * i + 2],
                    bytes[4 * i + 3],
                ])
            })
        })
        .take(count)
        .collect()
}

/// The probe input of `positions` (at most [`MAX_PROBE_POSITIONS`]) for `layers` from
/// `seed`: token ids for the first shard, otherwise hidden states with values in
/// [-1, 1).
pub fn probe_input(
    seed: &Hash,
    layers: LayerRange,
    (hidden_size, vocab): (usize, usize),
    positions: usize,
) -> ShardInput {
    let positions = positions.clamp(1, MAX_PROBE_POSITIONS);
    if layers.start == 0 {
        let vocab = vocab.max(1) as u32;
        return ShardInput::Tokens(words(seed, positions).iter().map(|w| w % vocab).collect());
    }
    let values: Vec<u8> = hidden_values(seed, positions * hidden_size)
        .flat_map(f32::to_le_bytes)
        .collect();
    ShardInput::Hidden(Activations {
        dtype: WireDType::F32,
        shape: vec![1, positions as u32, hidden_size as u32],
        data: values,
    })
}

/// The first `count` hidden values of the probe input of `seed`, in [-1, 1).
fn hidden_values(seed: &Hash, count: usize) -> impl Iterator<Item = f32> {
    words(seed, count)
        .into_iter()
        .map(|w| (w as f64 / u32::MAX as f64) as f32 * 2.0 - 1.0)
}

/// The request a prober sends: positions `0..PROBE_POSITIONS` of a fresh session, full
/// logits from the last shard (so they can be compared with tolerance).
pub fn probe_request(
    model: Hash,
    session: SessionId,
    layers: LayerRange,
    input: ShardInput,
) -> ShardRequest {
    ShardRequest {
        model,
        session,
        layers,
        start_pos: 0,
        input,
        head: HeadMode::Logits,
        wire: WireDType::F32,
    }
}

/// Re-runs `input` on `exec` (the probed layers) and compares with the worker's
/// `output`. Errors are the prober's own failures; anything wrong with the answer is a
/// [`CheckOutcome::Mismatch`].
pub fn check_probe(
    exec: &ShardExecutor,
    input: &ShardInput,
    output: &ShardOutput,
) -> Result<CheckOutcome> {
    let mismatch = |why: &str| Ok(CheckOutcome::Mismatch(why.to_string()));
    let hidden_in;
    let exec_input = match input {
        ShardInput::Tokens(t) => ExecInput::Tokens(t),
        ShardInput::Hidden(a) => {
            hidden_in = a.to_tensor()?;
            ExecInput::Hidden(&hidden_in)
        }
    };
    let ours = exec.forward(&mut exec.new_cache(), exec_input.clone(), 0)?;
    let (expected, got) = match (exec.weights().is_last(), output) {
        (true, ShardOutput::Logits(a)) => {
            let Ok(theirs) = a.to_tensor() else {
                return mismatch("logits are malformed");
            };
            let ours = exec.head(&ours)?.unsqueeze(0)?;
            if theirs.dims() != [ours.dim(1)?, ours.dim(2)?] {
                return mismatch("logits have the wrong shape");
            }
            (position_topk(&ours)?, position_topk(&theirs.unsqueeze(0)?)?)
        }
        (false, ShardOutput::Hidden(a)) => {
            let Ok(theirs) = a.to_tensor() else {
                return mismatch("hidden states are malformed");
            };
            if theirs.dims() != ours.dims() {
                return mismatch("hidden states have the wrong shape");
            }
            (
                work_topk(exec, &exec_input, &ours)?,
                work_topk(exec, &exec_input, &theirs)?,
            )
        }
        _ => return mismatch("the answer is not the kind of output the shard produces"),
    };
    let (expected, got) = (
        ActivationCommitment::from_positions(0, &expected),
        ActivationCommitment::from_positions(0, &got),
    );
    if expected.matches(&got) {
        Ok(CheckOutcome::Match)
    } else {
        mismatch("the answer differs from the shard's output on the probe input")
    }
}

/// The probe input of `positions` for `exec`'s layers (its range, hidden size and
/// vocabulary).
pub fn probe_input_for(exec: &ShardExecutor, seed: &Hash, positions: usize) -> Result<ShardInput> {
    let w = exec.weights();
    let layers = LayerRange::new(w.range.start as u16, w.range.end as u16)
        .map_err(|e| InferenceError::BadRequest(e.to_string()))?;
    let c = exec.config();
    Ok(probe_input(
        seed,
        layers,
        (c.hidden_size, c.vocab_size),
        positions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{ModelSource, ModelWeights, Precision};
    use crate::{fault::SkipWork, shard::Shard};

    fn tiny() -> ModelWeights {
        let dir = tempfile::tempdir().unwrap();
        let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), 5).unwrap();
        ModelWeights::load(&source, None, Precision::Native).unwrap()
    }

    /// The worker's answer to a probe of `range`, from `shard`.
    fn answer(shard: &Shard, range: LayerRange, input: &ShardInput) -> ShardOutput {
        let req = probe_request(shard.model(), [7; 16], range, input.clone());
        shard.handle(&req).unwrap().output
    }

    #[test]
    fn honest_answers_match_and_skipped_or_foreign_work_does_not() {
        let w = tiny();
        let hash = Hash::repeat_byte(3);
        for (a, b) in [(0u16, 2u16), (2, 4), (4, 6)] {
            let range = LayerRange::new(a, b).unwrap();
            let slice = || w.slice(a as usize..b as usize).unwrap();
            let exec = ShardExecutor::new(slice()).unwrap();
            let input = probe_input_for(&exec, &Hash::repeat_byte(a as u8 + 1), 96).unwrap();
            assert_eq!(
                input,
                probe_input_for(&exec, &Hash::repeat_byte(a as u8 + 1), 96).unwrap()
            );

            let honest = Shard::new(slice(), hash).unwrap();
            let out = answer(&honest, range, &input);
            assert_eq!(
                check_probe(&exec, &input, &out).unwrap(),
                CheckOutcome::Match
            );

            // A worker skipping its layers on every position.
            let lazy = Shard::new(slice(), hash).unwrap().with_fault(SkipWork {
                permill: 1_000_000,
                seed: 1,
            });
            let out = answer(&lazy, range, &input);
            assert!(matches!(
                check_probe(&exec, &input, &out).unwrap(),
                CheckOutcome::Mismatch(_)
            ));

            // An answer to a different input.
            let other = probe_input_for(&exec, &Hash::repeat_byte(99), 96).unwrap();
            let out = answer(&honest, range, &other);
            assert!(matches!(
                check_probe(&exec, &input, &out).unwrap(),
                CheckOutcome::Mismatch(_)
            ));
        }
    }

    #[test]
    fn malformed_answers_are_mismatches_not_errors() {
        let w = tiny();
        let exec = ShardExecutor::new(w.slice(2..4).unwrap()).unwrap();
        let input = probe_input_for(&exec, &Hash::repeat_byte(1), 4).unwrap();
        let bad = [
            ShardOutput::Argmax(vec![1, 2, 3, 4]),
            ShardOutput::Hidden(Activations {
                dtype: WireDType::F32,
                shape: vec![1, 4, 3],
                data: vec![0; 5],
            }),
            ShardOutput::Hidden(Activations {
                dtype: WireDType::F32,
                shape: vec![1, 1, 1],
                data: vec![0; 4],
            }),
        ];
        for out in bad {
            assert!(matches!(
                check_probe(&exec, &input, &out).unwrap(),
                CheckOutcome::Mismatch(_)
            ));
        }
    }
}
