//! The messages a pipeline client and a shard exchange, as plain SCALE-encodable structs so
//! any transport (in-process today, libp2p request-response in the node) can carry them.
//! Activations travel as little-endian f32 or f16 bytes with their shape; every request
//! names the model hash, the session and the first position it covers.

use crate::commitment::ActivationCommitment;
use crate::error::{InferenceError, Result};
use candle_core::{DType, Device, Tensor};
use half::f16;
use neuroshard_primitives::{blake2_256, Hash, LayerRange, SessionId};
use parity_scale_codec::{Decode, Encode};

/// Element type of activations on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum WireDType {
    F32,
    F16,
}

/// A tensor on the wire: shape plus little-endian element bytes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Activations {
    pub dtype: WireDType,
    pub shape: Vec<u32>,
    pub data: Vec<u8>,
}

impl Activations {
    /// Encodes `t` as `dtype` bytes.
    pub fn from_tensor(t: &Tensor, dtype: WireDType) -> Result<Self> {
        let shape = t.dims().iter().map(|&d| d as u32).collect();
        let flat = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let data = match dtype {
            WireDType::F32 => flat.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WireDType::F16 => flat
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes())
                .collect(),
        };
        Ok(Self { dtype, shape, data })
    }

    /// Decodes to an f32 tensor, checking the byte length against the shape.
    pub fn to_tensor(&self) -> Result<Tensor> {
        let count: usize = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .ok_or_else(|| InferenceError::BadRequest("activation shape overflows".into()))?;
        let width = match self.dtype {
            WireDType::F32 => 4,
            WireDType::F16 => 2,
        };
        if count.checked_mul(width) != Some(self.data.len()) {
            return Err(InferenceError::BadRequest(format!(
                "activations of shape {:?} need {} bytes, got {}",
                self.shape,
                count.saturating_mul(width),
                self.data.len()
            )));
        }
        let values: Vec<f32> = match self.dtype {
            WireDType::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            WireDType::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
        };
        let shape: Vec<usize> = self.shape.iter().map(|&d| d as usize).collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }
}

/// What a shard is given.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ShardInput {
    /// Token ids (for the first shard).
    Tokens(Vec<u32>),
    /// Hidden states `(1, seq, hidden)` from the previous shard.
    Hidden(Activations),
}

impl ShardInput {
    /// How many positions the input carries, as its shape says (the shard checks the
    /// shape against the data before it computes anything).
    pub fn positions(&self) -> u32 {
        match self {
            ShardInput::Tokens(t) => u32::try_from(t.len()).unwrap_or(u32::MAX),
            ShardInput::Hidden(a) => a.shape.get(1).copied().unwrap_or(0),
        }
    }
}

/// What the last shard returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum HeadMode {
    /// The argmax token of every position (greedy decoding).
    Argmax,
    /// Full logits of every position (sampling).
    Logits,
}

/// A request to run a shard over positions `start_pos..start_pos + seq` of a session.
/// The shard first drops any cached positions at or after `start_pos`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ShardRequest {
    pub model: Hash,
    pub session: SessionId,
    pub layers: LayerRange,
    pub start_pos: u32,
    pub input: ShardInput,
    pub head: HeadMode,
    /// Element type for hidden states in the response.
    pub wire: WireDType,
}

/// What a shard produced.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ShardOutput {
    Hidden(Activations),
    Argmax(Vec<u32>),
    Logits(Activations),
}

/// A shard's answer to a [`ShardRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ShardResponse {
    pub session: SessionId,
    pub start_pos: u32,
    pub output: ShardOutput,
}

/// A client asks a provider to account for its work on a session up to `until`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WorkRequest {
    pub session: SessionId,
    /// One past the last accepted position.
    pub until: u32,
}

/// What a shard did for one session since its previous record: the layers it ran over
/// which positions, with which weights, on which inputs and with which outputs. It knows
/// nothing of accounts, epochs or signatures: the node's billing turns it into a chain
/// receipt, and a spot check re-runs it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WorkRecord {
    pub model: Hash,
    pub layers: LayerRange,
    pub session: SessionId,
    /// The session's record number at this shard, from 0.
    pub seq: u32,
    pub position_start: u32,
    pub position_end: u32,
    /// Hash of the [`ActivationCommitment`] of positions `position_start..position_end`.
    pub commitment: Hash,
    /// Digest of the inputs of positions `0..position_end` (see
    /// [`crate::spot_check::InputLog::digest`]).
    pub input_commitment: Hash,
    /// The adapter version merged into the layers (`None`: the base model).
    pub adapter: Option<Hash>,
}

impl WorkRecord {
    /// The record's identity: the key its spot-check material is archived under.
    pub fn id(&self) -> Hash {
        blake2_256(&self.encode())
    }
}

/// A [`WorkRecord`] with the full commitment whose hash it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedWork {
    pub record: WorkRecord,
    pub commitment: ActivationCommitment,
}

/// Short printable form of a session id.
pub fn session_hex(session: &SessionId) -> String {
    hex::encode(&session[..4])
}

#[cfg(test)]
mod tests {
    use super::*;
    use parity_scale_codec::{Decode, Encode};

    #[test]
    fn activations_round_trip_and_reject_bad_lengths() {
        let t = Tensor::from_vec(
            vec![1.5f32, -2.25, 3.0, 0.0, 7.0, -0.5],
            (1, 2, 3),
            &Device::Cpu,
        )
        .unwrap();
        for dtype in [WireDType::F32, WireDType::F16] {
            let a = Activations::from_tensor(&t, dtype).unwrap();
            let back = Activations::decode(&mut &a.encode()[..])
                .unwrap()
                .to_tensor()
                .unwrap();
            assert_eq!(
                back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                vec![1.5, -2.25, 3.0, 0.0, 7.0, -0.5]
            );
        }
        let mut a = Activations::from_tensor(&t, WireDType::F32).unwrap();
        a.data.pop();
        assert!(a.to_tensor().is_err());
        a.shape = vec![u32::MAX, u32::MAX, u32::MAX];
        assert!(a.to_tensor().is_err());
    }
}
