//! Errors of the runtime: why a transaction is invalid, why a call failed, why a block
//! is rejected, why a genesis config is unusable. Messages are meant for users (they
//! reach JSON-RPC error responses verbatim).

use neuroshard_primitives::{BlockNumber, Hash, Nonce};
use neuroshard_primitives::{DispatchError as SpDispatchError, ModuleError};
use neuroshard_support::{error_index, error_name, Pallet, StorageError};
use scale_info::TypeInfo;
use thiserror::Error;

/// A call that ran and failed (its changes were rolled back).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DispatchError {
    #[error("balances: {0}")]
    Balances(#[from] neuroshard_balances::Error),
    #[error("staking: {0}")]
    Staking(#[from] neuroshard_staking::Error),
    #[error("ponw: {0}")]
    Ponw(#[from] neuroshard_ponw::Error),
    #[error("training: {0}")]
    Training(#[from] neuroshard_training_pallet::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl DispatchError {
    /// The error as Substrate's `sp_runtime::DispatchError`: a pallet's error is
    /// `Module { index: pallet, error: [variant, 0, 0, 0] }`, naming the pallet whose
    /// error it is (a balance error met by staking is the Balances pallet's); an
    /// unreadable state is `Corruption`.
    pub fn to_substrate(&self) -> SpDispatchError {
        use neuroshard_balances as balances;
        use neuroshard_ponw as ponw;
        use neuroshard_staking as staking;
        use neuroshard_training_pallet as training;
        match self {
            DispatchError::Balances(e)
            | DispatchError::Staking(staking::Error::Balances(e))
            | DispatchError::Ponw(ponw::Error::Balances(e))
            | DispatchError::Training(training::Error::Balances(e))
            | DispatchError::Training(training::Error::Ponw(ponw::Error::Balances(e))) => {
                module::<balances::Balances, _>(e)
            }
            DispatchError::Staking(e) => module::<staking::Staking, _>(e),
            DispatchError::Ponw(e) | DispatchError::Training(training::Error::Ponw(e)) => {
                module::<ponw::Ponw, _>(e)
            }
            DispatchError::Training(e) => module::<training::Training, _>(e),
            DispatchError::Storage(_) => SpDispatchError::Corruption,
        }
    }
}

/// Pallet `P`'s error `e` as a module error (a storage failure inside the pallet is
/// `Corruption`).
fn module<P: Pallet, E: TypeInfo + std::fmt::Debug + 'static>(e: &E) -> SpDispatchError {
    if error_name(e) == "Storage" {
        return SpDispatchError::Corruption;
    }
    SpDispatchError::Module(ModuleError {
        index: P::INDEX,
        error: [error_index(e), 0, 0, 0],
    })
}

/// Why an extrinsic cannot be included.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransactionError {
    #[error("bad signature: not signed by the sender for this chain, runtime version and era")]
    BadSignature,
    /// A mortal extrinsic whose era began at a block this chain no longer (or not yet)
    /// knows the hash of: it expired, or was signed on another fork.
    #[error("the extrinsic's era began at block {birth}, whose hash is not kept (expired or another fork)")]
    AncientBirthBlock { birth: BlockNumber },
    #[error("the all-zero account cannot sign")]
    ZeroSender,
    #[error("stale nonce {got}: the account's next nonce is {expected} (already used, a replay?)")]
    StaleNonce { expected: Nonce, got: Nonce },
    #[error("nonce {got} is too far ahead of the account's next nonce {expected}")]
    FutureNonce { expected: Nonce, got: Nonce },
    #[error("extrinsic of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: u32 },
    #[error("cannot pay the fee: {0}")]
    CannotPayFee(neuroshard_balances::Error),
    /// The call failed in a dry run (in a block a fee-paying one would be included,
    /// pay its fee and fail with this error).
    #[error("call failed: {0}")]
    Call(#[from] DispatchError),
    /// A checked sample of the call is invalid (a receipt batch with a bad signature):
    /// the sender's fault, whatever the state.
    #[error("the call is invalid: {0}")]
    Refuted(DispatchError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a block is rejected on import.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    #[error("parent hash {got:?} is not the expected parent {expected:?}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block number {got} does not follow parent {parent}")]
    WrongNumber {
        parent: BlockNumber,
        got: BlockNumber,
    },
    #[error("slot {got} is not after the parent's slot {parent}")]
    SlotNotIncreasing { parent: u64, got: u64 },
    #[error("author is not the slot's expected author")]
    WrongAuthor,
    #[error("invalid seal")]
    BadSeal,
    #[error("the slot-lottery VRF signature is not the author's for this slot and randomness")]
    BadVrf,
    #[error("extrinsics root mismatch")]
    ExtrinsicsRoot,
    #[error("state root mismatch: header {header:?}, computed {computed:?}")]
    StateRoot { header: Hash, computed: Hash },
    #[error("block body of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: u32 },
    #[error("extrinsic #{index} is invalid: {error}")]
    Extrinsic {
        index: usize,
        error: TransactionError,
    },
    #[error("block initialisation failed: {0}")]
    Initialize(DispatchError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a genesis config cannot be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis: {0}")]
    Dispatch(#[from] DispatchError),
    #[error("genesis: epoch length and slot duration must be positive")]
    BadSystemParams,
    #[error("genesis: at least one validator is required")]
    NoValidators,
}
