//! Substrate's two-dimensional weight (`sp_weights::weight_v2::Weight`), as
//! [`crate::dispatch::DispatchInfo`] reports it. NeuroShard meters no weight, so every
//! weight it reports is zero.

use parity_scale_codec::{Decode, Encode};
use scale_info::TypeInfo;

/// Computation time (`ref_time`, picoseconds) and proof size (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "sp_weights"))]
pub struct Weight {
    #[codec(compact)]
    pub ref_time: u64,
    #[codec(compact)]
    pub proof_size: u64,
}
