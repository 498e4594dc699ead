//! Spot checks of inference work, the worker's and the validator's halves.
//!
//! A [`WorkRecord`] (what a chain receipt attests) commits to two things: the digest of
//! the inputs the worker was sent for positions `0..position_end` ([`InputLog::digest`];
//! the client keeps the same log of what it sent and checks the digest before it
//! counter-signs) and the commitment to the change its layers made at every position of
//! `position_start..position_end` (its norm and largest values, [`work_topk`]). When the chain samples a receipt, the
//! worker hands over the [`SpotCheckMaterial`] it archived ([`crate::archive`]) when it
//! recorded the work: the inputs and the full commitment. A validator holding the same
//! layers checks that both match the record's hashes, re-runs the layers over all the
//! inputs in one prefill (no KV cache needed) and compares the recomputed commitment with
//! the worker's under TOPLOC-like tolerance ([`ActivationCommitment::matches`]).
//!
//! The executor computes every position independently of the batch it is in, so an
//! honest worker's decode and the validator's prefill agree exactly on one machine; the
//! tolerance absorbs other machines' rounding, not different or approximated work
//! (`bench verify` measures both).

use crate::commitment::{position_topk, ActivationCommitment, PositionTopK};
use crate::error::{InferenceError, Result};
use crate::executor::{ExecInput, ShardExecutor};
use crate::messages::{Activations, ShardInput, WireDType, WorkRecord};
use candle_core::Tensor;
use neuroshard_primitives::{blake2_256, Hash};
use parity_scale_codec::{Decode, Encode};

const INPUT_DOMAIN: &[u8] = b"neuroshard/shard-inputs/v1";

/// The inputs one stage of a session was sent, one entry per position (the latest sent
/// for that position: rejected drafts and failover replays overwrite).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub enum InputLog {
    #[default]
    Empty,
    /// Token ids (the first stage).
    Tokens(Vec<u32>),
    /// Hidden-state rows as they crossed the wire: `width` values of `dtype` per position.
    Hidden {
        dtype: WireDType,
        width: u32,
        data: Vec<u8>,
    },
}

fn dtype_bytes(dtype: WireDType) -> usize {
    match dtype {
        WireDType::F32 => 4,
        WireDType::F16 => 2,
    }
}

impl InputLog {
    /// Positions logged.
    pub fn len(&self) -> usize {
        match self {
            InputLog::Empty => 0,
            InputLog::Tokens(t) => t.len(),
            InputLog::Hidden { dtype, width, data } => {
                data.len() / (dtype_bytes(*dtype) * (*width as usize).max(1))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn byte_len(&self) -> usize {
        match self {
            InputLog::Empty => 0,
            InputLog::Tokens(t) => t.len() * 4,
            InputLog::Hidden { data, .. } => data.len(),
        }
    }

    /// Records `input` as the inputs of positions `start..`, dropping what was logged at
    /// or after `start`. The input's kind, element type and width must match what the
    /// session was sent before (a request from position 0 starts a new log).
    pub fn record(&mut self, start: usize, input: &ShardInput) -> Result<()> {
        if start > self.len() {
            return Err(InferenceError::BadRequest(format!(
                "input log holds {} positions, cannot record from {start}",
                self.len()
            )));
        }
        if start == 0 {
            *self = InputLog::Empty;
        }
        match (&mut *self, input) {
            (log @ InputLog::Empty, ShardInput::Tokens(t)) => *log = InputLog::Tokens(t.clone()),
            (log @ InputLog::Empty, ShardInput::Hidden(a)) => {
                let width = *a.shape.last().unwrap_or(&0);
                *log = InputLog::Hidden {
                    dtype: a.dtype,
                    width,
                    data: a.data.clone(),
                };
            }
            (InputLog::Tokens(log), ShardInput::Tokens(t)) => {
                log.truncate(start);
                log.extend_from_slice(t);
            }
            (InputLog::Hidden { dtype, width, data }, ShardInput::Hidden(a))
                if a.dtype == *dtype && a.shape.last() == Some(width) =>
            {
                data.truncate(start * dtype_bytes(*dtype) * *width as usize);
                data.extend_from_slice(&a.data);
            }
            _ => {
                return Err(InferenceError::BadRequest(
                    "input kind, element type or width changed within a session".into(),
                ))
            }
        }
        Ok(())
    }

    /// Drops every position at or after `pos`.
    pub fn truncate(&mut self, pos: usize) {
        match self {
            InputLog::Empty => {}
            InputLog::Tokens(t) => t.truncate(pos),
            InputLog::Hidden { dtype, width, data } => {
                data.truncate(pos * dtype_bytes(*dtype) * *width as usize)
            }
        }
    }

    /// The log of positions `0..until` (`None` when fewer are logged).
    pub fn prefix(&self, until: usize) -> Option<InputLog> {
        if until > self.len() {
            return None;
        }
        let mut out = self.clone();
        out.truncate(until);
        Some(out)
    }

    /// The digest a receipt carries as `input_commitment`: positions `0..until`.
    pub fn digest(&self, until: usize) -> Option<Hash> {
        Some(blake2_256(&(INPUT_DOMAIN, self.prefix(until)?).encode()))
    }

    /// The logged inputs as one shard input over all positions.
    pub fn as_shard_input(&self) -> Result<ShardInput> {
        match self {
            InputLog::Empty => Err(InferenceError::BadRequest("no inputs logged".into())),
            InputLog::Tokens(t) => Ok(ShardInput::Tokens(t.clone())),
            InputLog::Hidden { dtype, width, data } => Ok(ShardInput::Hidden(Activations {
                dtype: *dtype,
                shape: vec![1, self.len() as u32, *width],
                data: data.clone(),
            })),
        }
    }
}

/// What a worker hands a validator for one sampled receipt.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SpotCheckMaterial {
    /// Inputs of positions `0..position_end`.
    pub inputs: InputLog,
    /// The encoded [`ActivationCommitment`] whose hash the receipt carries.
    pub commitment: Vec<u8>,
}

/// The outcome of re-running a receipt's work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The recomputed activations match the commitment within tolerance.
    Match,
    /// The worker's material does not attest the receipt's work; the reason says how.
    Mismatch(String),
}

/// Re-runs the recorded `work` on `exec` (which must serve exactly `work.layers`) from
/// the worker's `material` and compares. Errors are the checker's own failures (tensor
/// errors); anything wrong with the material is a [`CheckOutcome::Mismatch`].
pub fn check_work(
    exec: &ShardExecutor,
    work: &WorkRecord,
    material: &SpotCheckMaterial,
) -> Result<CheckOutcome> {
    Ok(match recompute(exec, work, material)? {
        Err(why) => CheckOutcome::Mismatch(why),
        Ok((claimed, recomputed)) if recomputed.matches(&claimed) => CheckOutcome::Match,
        Ok(_) => CheckOutcome::Mismatch("recomputed activations differ from the commitment".into()),
    })
}

/// The worker's commitment and the one `exec` recomputes from the worker's `material`
/// for `work` (what [`check_work`] compares), or why the material does not attest the
/// receipt. Errors are the checker's own failures.
pub fn recompute(
    exec: &ShardExecutor,
    work: &WorkRecord,
    material: &SpotCheckMaterial,
) -> Result<std::result::Result<(ActivationCommitment, ActivationCommitment), String>> {
    let end = work.position_end as usize;
    if material.inputs.len() != end {
        return Ok(Err(format!(
            "material holds {} input positions, the receipt covers 0..{end}",
            material.inputs.len()
        )));
    }
    if material.inputs.digest(end) != Some(work.input_commitment) {
        return Ok(Err(
            "inputs do not hash to the receipt's input commitment".into()
        ));
    }
    if blake2_256(&material.commitment) != work.commitment {
        return Ok(Err(
            "commitment does not hash to the receipt's commitment".into()
        ));
    }
    let Some(claimed) = ActivationCommitment::decode(&material.commitment) else {
        return Ok(Err("commitment bytes are malformed".into()));
    };
    let input = material.inputs.as_shard_input()?;
    let mut cache = exec.new_cache();
    let hidden_in;
    let exec_input = match &input {
        ShardInput::Tokens(t) => ExecInput::Tokens(t),
        ShardInput::Hidden(a) => {
            hidden_in = match a.to_tensor() {
                Ok(t) => t,
                Err(e) => return Ok(Err(format!("inputs are malformed: {e}"))),
            };
            ExecInput::Hidden(&hidden_in)
        }
    };
    let out = match exec.forward(&mut cache, exec_input.clone(), 0) {
        Ok(out) => out,
        Err(InferenceError::BadRequest(why)) => return Ok(Err(format!("inputs refused: {why}"))),
        Err(e) => return Err(e),
    };
    let topk = work_topk(exec, &exec_input, &out)?;
    let start = work.position_start as usize;
    let Some(slice) = topk.get(start..end) else {
        return Ok(Err(format!(
            "positions {start}..{end} are not all computed"
        )));
    };
    let recomputed = ActivationCommitment::from_positions(work.position_start, slice);
    Ok(Ok((claimed, recomputed)))
}

/// The per-position records (norm and largest values) a commitment is built from: of the change the shard's
/// layers made to the residual stream, `output - input` (the token embeddings are the
/// first shard's input). The raw output would not do: a few huge dimensions that every
/// layer carries through almost unchanged fill its top-k, so a worker returning its input
/// without running its layers would still match; the change is the work.
pub fn work_topk(
    exec: &ShardExecutor,
    input: &ExecInput<'_>,
    out: &Tensor,
) -> Result<Vec<PositionTopK>> {
    let input = match input {
        ExecInput::Hidden(h) => (*h).clone(),
        ExecInput::Tokens(t) => {
            let width = out.dim(2)?;
            Tensor::from_vec(exec.embed(t)?, (1, t.len(), width), out.device())?
        }
    };
    Ok(position_topk(&(out - input.to_dtype(out.dtype())?)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hidden(rows: usize, width: u32, fill: u8) -> ShardInput {
        ShardInput::Hidden(Activations {
            dtype: WireDType::F16,
            shape: vec![1, rows as u32, width],
            data: vec![fill; rows * width as usize * 2],
        })
    }

    #[test]
    fn logs_follow_truncation_and_replay() {
        let mut log = InputLog::default();
        log.record(0, &ShardInput::Tokens(vec![1, 2, 3])).unwrap();
        log.record(2, &ShardInput::Tokens(vec![9, 8])).unwrap();
        assert_eq!(log, InputLog::Tokens(vec![1, 2, 9, 8]));
        assert!(log.record(7, &ShardInput::Tokens(vec![1])).is_err());
        let before = log.digest(4).unwrap();
        assert_ne!(log.digest(3), Some(before));
        assert_eq!(log.digest(5), None);
        // A replay from 0 starts over.
        log.record(0, &ShardInput::Tokens(vec![1, 2, 9, 8]))
            .unwrap();
        assert_eq!(log.digest(4), Some(before));

        let mut h = InputLog::default();
        h.record(0, &hidden(3, 4, 1)).unwrap();
        h.record(1, &hidden(1, 4, 2)).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h.record(2, &hidden(1, 5, 2)).is_err(), "width changed");
        assert!(h.record(2, &ShardInput::Tokens(vec![1])).is_err());
    }

    proptest! {
        #[test]
        fn decoding_hostile_material_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = SpotCheckMaterial::decode(&mut bytes.as_slice());
        }
    }
}
