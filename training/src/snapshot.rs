//! A shard trainer's state after a round, as one holder hands it to another: the round
//! it is at, the adapter values and the outer optimizer's momentum. A node that missed a
//! round (restarted, or was in a round's minority) resumes from a peer's snapshot, and a
//! node that serves the shard without training gets the adapter it must serve from one.
//!
//! Snapshots come from peers, so [`AdapterSnapshot::decode`] is strict (sizes, finite
//! values, the caps of [`crate::codec`]) and the adapter values must hash to the version
//! the chain recorded before anything uses them ([`AdapterSnapshot::verify`]). The
//! momentum cannot be checked against the chain: a peer lying about it only moves the
//! receiving holder's next outer step off the majority's, which the chain's majority
//! rule then outvotes.

use crate::codec::{self, WireFloat};
use crate::error::{Result, TrainingError};
use crate::lora::AdapterLayout;
use neuroshard_primitives::Hash;
use parity_scale_codec::{Decode, DecodeAll, Encode};

/// See the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterSnapshot {
    /// The round the holder is at (the next one to train).
    pub round: u32,
    pub theta: Vec<f32>,
    pub velocity: Vec<f32>,
}

#[derive(Encode, Decode)]
struct Wire {
    round: u32,
    theta: Vec<u8>,
    velocity: Vec<u8>,
}

impl AdapterSnapshot {
    /// The snapshot's bytes (values in f32, so a resumed holder is bit-exact).
    pub fn encode(&self, max_bytes: usize) -> Result<Vec<u8>> {
        Ok(Wire {
            round: self.round,
            theta: codec::encode(&self.theta, WireFloat::F32, max_bytes)?,
            velocity: codec::encode(&self.velocity, WireFloat::F32, max_bytes)?,
        }
        .encode())
    }

    /// Decodes a snapshot for an adapter of `len` values.
    pub fn decode(bytes: &[u8], len: usize, max_bytes: usize) -> Result<Self> {
        let wire = Wire::decode_all(&mut &bytes[..])
            .map_err(|e| TrainingError::BadPseudoGradient(format!("snapshot: {e}")))?;
        Ok(Self {
            round: wire.round,
            theta: codec::decode(&wire.theta, len, max_bytes)?,
            velocity: codec::decode(&wire.velocity, len, max_bytes)?,
        })
    }

    /// Checks that the adapter values are `version` under `layout`.
    pub fn verify(&self, layout: &AdapterLayout, version: &Hash) -> Result<()> {
        if self.theta.len() != layout.len || self.velocity.len() != layout.len {
            return Err(TrainingError::BadConfig(format!(
                "snapshot of {} values for an adapter of {}",
                self.theta.len(),
                layout.len
            )));
        }
        let got = layout.hash(&self.theta);
        if &got != version {
            return Err(TrainingError::BadPseudoGradient(format!(
                "snapshot is adapter version {got:?}, not {version:?}"
            )));
        }
        Ok(())
    }
}
