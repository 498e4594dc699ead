//! The NeuroShard runtime: a pure, deterministic state machine. It builds the genesis
//! state from a [`GenesisConfig`], validates transactions for the pool, builds blocks
//! from candidate extrinsics and executes (verifies) imported blocks, producing the
//! state changes and events the node persists. No I/O, no clocks, no threads of its own
//! (receipt signature batches use the rayon pool, which does not affect results).
//!
//! Same parent state + same block = same state root, always.

mod dispatch;
mod error;
pub mod events;
mod execute;
mod genesis;
pub mod metadata;
pub mod metadata_v15;
pub mod payment;
pub mod storage_keys;
pub mod system;
mod validate;

pub use dispatch::AccountInfo;
pub use error::{BlockError, DispatchError, GenesisError, TransactionError};
pub use execute::{BuiltBlock, ExecutedBlock};
pub use genesis::{GenesisConfig, RuntimeParams};
pub use system::SystemParams;
pub use validate::{ValidTransaction, Validation};

pub use neuroshard_balances as balances;
pub use neuroshard_ponw as ponw;
pub use neuroshard_staking as staking;
pub use neuroshard_support::{ReadProof, ReadState, StateChanges, StateDb};
pub use neuroshard_training_pallet as training;

use neuroshard_primitives::Hash;

/// The state machine of one chain (identified by its genesis block hash, which every
/// extrinsic signature commits to).
#[derive(Clone, Debug, scale_info::TypeInfo)]
pub struct Runtime {
    genesis_hash: Hash,
}

impl Runtime {
    pub fn new(genesis_hash: Hash) -> Self {
        Self { genesis_hash }
    }

    /// The genesis block hash extrinsics must be signed for.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }
}

#[cfg(test)]
mod capacity_call_tests;
#[cfg(test)]
mod extrinsic_tests;
#[cfg(test)]
mod fee_tests;
#[cfg(test)]
mod tests;
