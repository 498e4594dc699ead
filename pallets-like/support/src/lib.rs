//! The pallet toolkit: the key-value state with its Merkle root ([`StateDb`]), the
//! transactional overlay extrinsics write through ([`Overlay`]), typed storage items
//! ([`StorageValue`], [`StorageMap`]), the block context every pallet sees, and the
//! small [`Pallet`] trait that names a pallet. Pallets own their calls' logic, storage
//! and errors; the runtime composes them.

pub mod metadata;
pub mod overlay;
pub mod proof;
pub mod state;
pub mod storage;

pub use metadata::{constant, error_index, error_name, PalletDecl, PalletErrors, PalletEvents};
pub use overlay::Overlay;
pub use proof::{verify_read_proof, ReadProof};
pub use state::{ReadState, StateChanges, StateDb};
pub use storage::{StorageError, StorageMap, StorageValue};

use neuroshard_primitives::{AccountId, BlockNumber, Hash};

/// A pallet: a named unit of state and logic.
pub trait Pallet {
    /// Name used as the storage prefix and in errors ("Balances").
    const NAME: &'static str;
    /// Index of the pallet in the runtime: its calls' variant index in the call enum and
    /// its position in the metadata.
    const INDEX: u8;
    /// The runtime events ([`neuroshard_primitives::Event`] variants, by name) this
    /// pallet emits: its `Event` enum in the metadata and its variant of the runtime's
    /// event enum (see [`metadata::PalletEvents`]).
    const EVENTS: &'static [&'static str] = &[];
}

/// Facts about the block being executed, derived by the runtime from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    pub number: BlockNumber,
    /// Hash of the parent block: randomness nobody could fix long in advance.
    pub parent_hash: Hash,
    pub slot: u64,
    pub author: AccountId,
    /// Reward epoch of this block (number / epoch length).
    pub epoch: u32,
    /// Wall-clock minute of this block (slot time / 60 s).
    pub minute: u64,
    /// Chain randomness after this block's author's VRF output was mixed in (what
    /// samples are drawn from; zero until the runtime's system pallet sets it).
    pub randomness: Hash,
}
