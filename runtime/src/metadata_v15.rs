//! The runtime's V15 metadata, answered by `state_call Metadata_metadata_at_version(15)`
//! (V14 stays what `state_getMetadata` and `Metadata_metadata` answer). The pallets are
//! the same declarations as V14's ([`crate::metadata::pallets`]); V15 adds the
//! extrinsic's address, call, signature and extra types, the outer call, event and
//! error enums, and the runtime APIs `state_call` answers with their inputs and output
//! types, so that tools (polkadot.js, subxt) call them with no definitions of their own.

use crate::error::DispatchError;
use crate::events::RuntimeEvent;
use crate::metadata::{pallets, signed_extensions, RuntimeVersion};
use crate::payment::RuntimeDispatchInfo;
use frame_metadata::v15::{
    CustomMetadata, ExtrinsicMetadata, OuterEnums, RuntimeApiMetadata, RuntimeApiMethodMetadata,
    RuntimeApiMethodParamMetadata, RuntimeMetadataV15, SignedExtensionMetadata,
};
use frame_metadata::RuntimeMetadataPrefixed;
use neuroshard_primitives::extrinsic::{MultiAddress, SignedExtra};
use neuroshard_primitives::{AccountId, Call, MultiSignature, SignedExtrinsic};
use neuroshard_support::{PalletDecl, PalletErrors, ReadState};
use scale_info::{meta_type, MetaType, TypeInfo};

/// The outer error enum of V15 (`OuterEnums::error_enum_ty`): a module error's pallet
/// index selects the variant, its first error byte the pallet's error. Described only,
/// never built.
#[allow(dead_code)]
#[derive(TypeInfo)]
enum RuntimeError {
    #[codec(index = 0)]
    Balances(PalletErrors<neuroshard_balances::Error>),
    #[codec(index = 1)]
    Ponw(PalletErrors<neuroshard_ponw::Error>),
    #[codec(index = 2)]
    Staking(PalletErrors<neuroshard_staking::Error>),
    #[codec(index = 3)]
    Training(PalletErrors<neuroshard_training_pallet::Error>),
}

/// One runtime API method: its name, `(name, type)` inputs and output type.
fn method(
    name: &'static str,
    inputs: Vec<(&'static str, MetaType)>,
    output: MetaType,
) -> RuntimeApiMethodMetadata {
    RuntimeApiMethodMetadata {
        name,
        inputs: inputs
            .into_iter()
            .map(|(name, ty)| RuntimeApiMethodParamMetadata { name, ty })
            .collect(),
        output,
        docs: Vec::new(),
    }
}

fn api(name: &'static str, methods: Vec<RuntimeApiMethodMetadata>) -> RuntimeApiMetadata {
    RuntimeApiMetadata {
        name,
        methods,
        docs: Vec::new(),
    }
}

/// The runtime APIs of `crate::metadata::RUNTIME_APIS`, as `state_call` answers them
/// (`Api_method` is `state_call`'s name of each method).
fn apis() -> Vec<RuntimeApiMetadata> {
    vec![
        api(
            "Core",
            vec![method("version", vec![], meta_type::<RuntimeVersion>())],
        ),
        api(
            "Metadata",
            vec![
                method("metadata", vec![], meta_type::<Vec<u8>>()),
                method(
                    "metadata_at_version",
                    vec![("version", meta_type::<u32>())],
                    meta_type::<Option<Vec<u8>>>(),
                ),
                method("metadata_versions", vec![], meta_type::<Vec<u32>>()),
            ],
        ),
        api(
            "AccountNonceApi",
            vec![method(
                "account_nonce",
                vec![("account", meta_type::<AccountId>())],
                meta_type::<u32>(),
            )],
        ),
        api(
            "TransactionPaymentApi",
            vec![method(
                "query_info",
                vec![
                    ("uxt", meta_type::<SignedExtrinsic>()),
                    ("len", meta_type::<u32>()),
                ],
                meta_type::<RuntimeDispatchInfo>(),
            )],
        ),
    ]
}

/// A signed extension in V15's type.
fn extension(
    identifier: &'static str,
    ty: MetaType,
    additional_signed: MetaType,
) -> SignedExtensionMetadata {
    SignedExtensionMetadata {
        identifier,
        ty,
        additional_signed,
    }
}

/// The runtime's V15 metadata.
pub fn metadata_v15(state: &impl ReadState) -> Result<RuntimeMetadataPrefixed, DispatchError> {
    let decls = pallets(state)?;
    let extrinsic = ExtrinsicMetadata {
        version: 4,
        address_ty: meta_type::<MultiAddress>(),
        call_ty: meta_type::<Call>(),
        signature_ty: meta_type::<MultiSignature>(),
        extra_ty: meta_type::<SignedExtra>(),
        signed_extensions: signed_extensions(extension),
    };
    let outer_enums = OuterEnums {
        call_enum_ty: meta_type::<Call>(),
        event_enum_ty: meta_type::<RuntimeEvent>(),
        error_enum_ty: meta_type::<RuntimeError>(),
    };
    let custom = CustomMetadata {
        map: Default::default(),
    };
    Ok(RuntimeMetadataV15::new(
        decls.into_iter().map(PalletDecl::into_v15).collect(),
        extrinsic,
        meta_type::<crate::Runtime>(),
        apis(),
        outer_enums,
        custom,
    )
    .into())
}
