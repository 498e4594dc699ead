//! What a pallet declares of itself for Substrate's runtime metadata (V14): its
//! storage items (each item describes its own key layout, see [`crate::storage`]), the
//! type of its calls and of its errors, and its constants with their SCALE values. Types
//! are described by their `scale_info::TypeInfo` derives, never written by hand; the
//! runtime collects every pallet's [`PalletDecl`] into `RuntimeMetadataPrefixed`.

use crate::Pallet;
use frame_metadata::v14::{
    PalletCallMetadata, PalletConstantMetadata, PalletErrorMetadata, PalletEventMetadata,
    PalletMetadata, PalletStorageMetadata, StorageEntryMetadata,
};
use neuroshard_primitives::Event;
use parity_scale_codec::Encode;
use scale_info::TypeInfo;
use scale_info::{form::MetaForm, meta_type, MetaType, Path, Type, TypeDef, TypeDefVariant};
use std::marker::PhantomData;

/// A constant of a pallet: its name, type and current SCALE value.
pub fn constant<T: Encode + TypeInfo + 'static>(
    name: &'static str,
    value: &T,
    docs: &'static str,
) -> PalletConstantMetadata<MetaForm> {
    PalletConstantMetadata {
        name,
        ty: meta_type::<T>(),
        value: value.encode(),
        docs: vec![docs],
    }
}

/// Everything one pallet declares for the metadata.
pub struct PalletDecl {
    /// The pallet's name (its storage prefix).
    pub name: &'static str,
    /// The pallet's index: the variant index of its calls in the runtime's call enum.
    pub index: u8,
    pub storage: Vec<StorageEntryMetadata<MetaForm>>,
    /// The enum of the pallet's calls, if it has any.
    pub calls: Option<MetaType>,
    /// The enum of the pallet's events, if it declares them.
    pub events: Option<MetaType>,
    /// The enum of the pallet's errors.
    pub errors: Option<MetaType>,
    pub constants: Vec<PalletConstantMetadata<MetaForm>>,
}

impl PalletDecl {
    /// A pallet with nothing declared yet.
    pub fn new(name: &'static str, index: u8) -> Self {
        Self {
            name,
            index,
            storage: Vec::new(),
            calls: None,
            events: None,
            errors: None,
            constants: Vec::new(),
        }
    }

    pub fn calls<T: TypeInfo + 'static>(mut self) -> Self {
        self.calls = Some(meta_type::<T>());
        self
    }

    /// Declares the pallet's events: the variants of the runtime [`Event`] that
    /// `P::EVENTS` names (see [`PalletEvents`]).
    pub fn events<P: Pallet + 'static>(mut self) -> Self {
        self.events = Some(meta_type::<PalletEvents<P>>());
        self
    }

    /// Declares the pallet's errors: the variants of `T`, without their fields (see
    /// [`PalletErrors`]).
    pub fn errors<T: TypeInfo + 'static>(mut self) -> Self {
        self.errors = Some(meta_type::<PalletErrors<T>>());
        self
    }

    pub fn storage(mut self, entries: Vec<StorageEntryMetadata<MetaForm>>) -> Self {
        self.storage = entries;
        self
    }

    pub fn constants(mut self, constants: Vec<PalletConstantMetadata<MetaForm>>) -> Self {
        self.constants = constants;
        self
    }

    /// The pallet's entry in V14 metadata.
    pub fn into_v14(self) -> PalletMetadata<MetaForm> {
        PalletMetadata {
            name: self.name,
            storage: (!self.storage.is_empty()).then_some(PalletStorageMetadata {
                prefix: self.name,
                entries: self.storage,
            }),
            calls: self.calls.map(|ty| PalletCallMetadata { ty }),
            event: self.events.map(|ty| PalletEventMetadata { ty }),
            constants: self.constants,
            error: self.errors.map(|ty| PalletErrorMetadata { ty }),
            index: self.index,
        }
    }
}

impl PalletDecl {
    /// The pallet's entry in V15 metadata: the V14 entry (V15 reuses its parts) with
    /// no pallet docs.
    pub fn into_v15(self) -> frame_metadata::v15::PalletMetadata<MetaForm> {
        let v14 = self.into_v14();
        frame_metadata::v15::PalletMetadata {
            name: v14.name,
            storage: v14.storage,
            calls: v14.calls,
            event: v14.event,
            constants: v14.constants,
            error: v14.error,
            index: v14.index,
            docs: Vec::new(),
        }
    }
}

/// The type of pallet `P`'s events in the metadata: the variants of the runtime's
/// [`Event`] that `P::EVENTS` names, in `Event`'s order, indexed from 0 within the
/// pallet, each with the fields `Event`'s own `TypeInfo` derive gives it. So the pallet
/// event `P.X` encodes as `Event::X` does with the pallet-local index as its first
/// byte; the runtime's event enum wraps it under `P::INDEX` as Substrate's does.
pub struct PalletEvents<P>(PhantomData<P>);

impl<P: Pallet + 'static> PalletEvents<P> {
    /// `P`'s index for the `Event` variant `name`, if `P` emits it.
    pub fn local_index(name: &str) -> Option<u8> {
        Self::variants()
            .into_iter()
            .find(|v| v.name == name)
            .map(|v| v.index)
    }

    fn variants() -> Vec<scale_info::Variant<MetaForm>> {
        let TypeDef::Variant(all) = Event::type_info().type_def else {
            return Vec::new();
        };
        all.variants
            .into_iter()
            .filter(|v| P::EVENTS.contains(&v.name))
            .enumerate()
            .map(|(i, mut v)| {
                v.index = u8::try_from(i).unwrap_or(u8::MAX);
                v
            })
            .collect()
    }
}

impl<P: Pallet + 'static> TypeInfo for PalletEvents<P> {
    type Identity = Self;

    fn type_info() -> Type {
        Type {
            path: Path::from_segments_unchecked(["neuroshard", P::NAME, "Event"]),
            type_params: Vec::new(),
            type_def: TypeDef::Variant(TypeDefVariant::new(Self::variants())),
            docs: vec!["The events of this pallet."],
        }
    }
}

/// The type of a pallet's errors in the metadata: the variants of its error enum `E`,
/// at their indices, without fields. Substrate encodes a pallet error in the four bytes
/// of `sp_runtime::ModuleError::error`, its variant index first; NeuroShard's errors
/// carry amounts and hashes that do not fit, so only the index is sent (the fields are
/// in the event's message) and the metadata says so. polkadot.js's
/// `registry.findMetaError` and subxt name an error from this type.
pub struct PalletErrors<E>(PhantomData<E>);

impl<E: TypeInfo + 'static> PalletErrors<E> {
    fn variants() -> Vec<scale_info::Variant<MetaForm>> {
        let TypeDef::Variant(all) = E::type_info().type_def else {
            return Vec::new();
        };
        all.variants
            .into_iter()
            .map(|mut v| {
                v.fields = Vec::new();
                v
            })
            .collect()
    }
}

impl<E: TypeInfo + 'static> TypeInfo for PalletErrors<E> {
    type Identity = Self;

    fn type_info() -> Type {
        let mut ty = E::type_info();
        ty.type_params = Vec::new();
        ty.type_def = TypeDef::Variant(TypeDefVariant::new(Self::variants()));
        ty
    }
}

/// The name of `error`'s variant, which `E`'s derived `Debug` prints first.
pub fn error_name<E: std::fmt::Debug>(error: &E) -> String {
    let debug = format!("{error:?}");
    debug
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The variant index of `error` in its enum's type description: the first byte of
/// its `ModuleError`. Found by [`error_name`]; `u8::MAX` (no such variant) if `E`'s
/// `Debug` is not the derived one.
pub fn error_index<E: TypeInfo + std::fmt::Debug + 'static>(error: &E) -> u8 {
    let name = error_name(error);
    PalletErrors::<E>::variants()
        .into_iter()
        .find(|v| v.name == name)
        .map_or(u8::MAX, |v| v.index)
}
