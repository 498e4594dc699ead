//! What Substrate's `System.ExtrinsicSuccess` / `ExtrinsicFailed` events carry about an
//! extrinsic, in Substrate's layouts and type paths so that `@polkadot/api` and subxt
//! read them as they read any Substrate chain's: [`DispatchInfo`] (weight, class, who
//! pays) here, the `DispatchError` (crate root, [`crate::DispatchError`]) beside it.
//! NeuroShard meters no weight: the weight reported is zero (the fee is length-based,
//! see `payment_queryInfo`).

use parity_scale_codec::{Decode, Encode};
use scale_info::TypeInfo;

pub use crate::weight_v2::Weight;

/// Substrate's `frame_support::dispatch::DispatchClass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "frame_support"))]
pub enum DispatchClass {
    Normal,
    Operational,
    Mandatory,
}

/// Substrate's `frame_support::dispatch::Pays`: whether the sender paid a fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "frame_support"))]
pub enum Pays {
    Yes,
    No,
}

/// Substrate's `frame_support::dispatch::DispatchInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "frame_support"))]
pub struct DispatchInfo {
    pub weight: Weight,
    pub class: DispatchClass,
    pub pays_fee: Pays,
}

impl DispatchInfo {
    /// A normal extrinsic that paid `fee` (zero: a free call, `Pays::No`).
    pub fn normal(fee: u128) -> Self {
        Self {
            weight: Weight::default(),
            class: DispatchClass::Normal,
            pays_fee: if fee == 0 { Pays::No } else { Pays::Yes },
        }
    }
}
