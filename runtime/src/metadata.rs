//! The runtime as Substrate tools see it: its version (spec name and version, the
//! transaction version and the runtime APIs it answers, named by the blake2-64 of the
//! API's name as `state_getRuntimeVersion` lists them) and its V14 metadata, collected
//! from every pallet's own declarations ([`PalletDecl`]): calls, storage items with
//! their hashers, errors and constants, all types described by `scale-info`. Constants
//! are the chain spec's parameters, so metadata is read from a state. The extrinsic
//! format and its signed extensions are `neuroshard_primitives::extrinsic`'s.

use crate::error::DispatchError;
use crate::system;
use frame_metadata::v14::{ExtrinsicMetadata, RuntimeMetadataV14, SignedExtensionMetadata};
use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed, META_RESERVED};
use neuroshard_primitives::extrinsic::extensions;
use neuroshard_primitives::SignedExtrinsic;
use neuroshard_support::{PalletDecl, ReadState};
use parity_scale_codec::Encode;
use scale_info::{meta_type, MetaType};

pub const SPEC_NAME: &str = "neuroshard";
pub const IMPL_NAME: &str = "neuroshard-node";
/// Bumped whenever the runtime's behaviour changes (docs/RPC.md says when); every
/// extrinsic signs it.
pub use neuroshard_primitives::extrinsic::{SPEC_VERSION, TRANSACTION_VERSION};
pub const IMPL_VERSION: u32 = 1;
/// The metadata versions `Metadata_metadata_at_version` answers (V15: see
/// [`crate::metadata_v15`]).
pub const METADATA_VERSIONS: [u32; 2] = [14, 15];

/// The runtime APIs answered through `state_call`, with their versions: `Core`
/// (`Core_version`), `Metadata` (v2: `Metadata_metadata`, `_at_version`, `_versions`),
/// `AccountNonceApi` (`AccountNonceApi_account_nonce`) and `TransactionPaymentApi` (v1:
/// `TransactionPaymentApi_query_info`, with a two-dimensional weight).
pub const RUNTIME_APIS: [(&str, u32); 4] = [
    ("Core", 4),
    ("Metadata", 2),
    ("AccountNonceApi", 1),
    ("TransactionPaymentApi", 1),
];

/// Substrate's `RuntimeVersion`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, scale_info::TypeInfo)]
pub struct RuntimeVersion {
    pub spec_name: String,
    pub impl_name: String,
    pub authoring_version: u32,
    pub spec_version: u32,
    pub impl_version: u32,
    /// (blake2-64 of the API's name, API version).
    pub apis: Vec<([u8; 8], u32)>,
    pub transaction_version: u32,
    pub system_version: u8,
}

/// This runtime's version.
pub fn version() -> RuntimeVersion {
    RuntimeVersion {
        spec_name: SPEC_NAME.into(),
        impl_name: IMPL_NAME.into(),
        authoring_version: 1,
        spec_version: SPEC_VERSION,
        impl_version: IMPL_VERSION,
        apis: RUNTIME_APIS
            .iter()
            .map(|(name, v)| (sp_crypto_hashing::blake2_64(name.as_bytes()), *v))
            .collect(),
        transaction_version: TRANSACTION_VERSION,
        system_version: 1,
    }
}

/// Every pallet's declarations, the System pallet first.
pub fn pallets(state: &impl ReadState) -> Result<Vec<PalletDecl>, DispatchError> {
    Ok(vec![
        system::metadata(state)?,
        neuroshard_balances::metadata(state)?,
        neuroshard_ponw::metadata(state)?,
        neuroshard_staking::metadata(state)?,
        neuroshard_training_pallet::metadata(state)?,
    ])
}

/// The signed extensions, each as `make(identifier, extra type, additional-signed
/// type)` describes it (V14 and V15 have their own types for the same three parts).
pub(crate) fn signed_extensions<T>(make: fn(&'static str, MetaType, MetaType) -> T) -> Vec<T> {
    extensions::all()
        .into_iter()
        .map(|(identifier, ty, additional)| make(identifier, ty, additional))
        .collect()
}

/// The runtime's V14 metadata.
pub fn metadata(state: &impl ReadState) -> Result<RuntimeMetadataPrefixed, DispatchError> {
    let pallets = pallets(state)?
        .into_iter()
        .map(PalletDecl::into_v14)
        .collect();
    let signed_extensions =
        signed_extensions(
            |identifier, ty, additional_signed| SignedExtensionMetadata {
                identifier,
                ty,
                additional_signed,
            },
        );
    let extrinsic = ExtrinsicMetadata {
        ty: meta_type::<SignedExtrinsic>(),
        version: 4,
        signed_extensions,
    };
    let v14 = RuntimeMetadataV14::new(pallets, extrinsic, meta_type::<crate::Runtime>());
    Ok(RuntimeMetadataPrefixed(
        META_RESERVED,
        RuntimeMetadata::V14(v14),
    ))
}

/// `Metadata_metadata_at_version`: the SCALE metadata of `version` if it is one of
/// [`METADATA_VERSIONS`].
pub fn metadata_at_version(
    state: &impl ReadState,
    version: u32,
) -> Result<Option<Vec<u8>>, DispatchError> {
    Ok(match version {
        14 => Some(metadata(state)?.encode()),
        15 => Some(crate::metadata_v15::metadata_v15(state)?.encode()),
        _ => None,
    })
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
