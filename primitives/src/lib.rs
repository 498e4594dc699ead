//! Types every NeuroShard crate shares: accounts, hashes, balances, headers, blocks,
//! signed extrinsics, calls, events, inference receipts and Proof-of-Training gradient receipts, all with SCALE codecs, plus
//! sr25519 signing with subkey-compatible secret URIs and SS58 addresses.
//!
//! This crate is the wire contract: the runtime validates these types, the node stores
//! and gossips them, the inference engine produces [`Receipt`]s. It holds no logic beyond
//! encoding, hashing, signature checks and the comparison of activation commitments
//! ([`commitment`], which the chain and the validators must do identically).

pub mod block;
pub mod call;
pub mod commitment;
pub mod crypto;
pub mod digest;
pub mod dispatch;
pub mod event;
pub mod evidence;
pub mod extrinsic;
pub mod merkle;
pub mod model_chunks;
pub mod receipt;
pub mod slot_lottery;
pub mod training;
pub mod units;
pub mod weight_v2;

pub use block::{Block, Header};
pub use call::{BalancesCall, Call, PonwCall, StakingCall, TrainingCall};
pub use crypto::{
    blake2_256, parse_account, AccountId, Hash, Keypair, Public, Signature, SIGNING_CONTEXT,
};
pub use digest::{ConsensusEngineId, Digest, DigestItem, PreDigest};
pub use dispatch::{DispatchClass, DispatchInfo, Pays};
pub use event::{Event, RejectReason, SlashReason, SpotCheckVerdict};
pub use evidence::{
    EvidenceSummary, MaterialStatement, Recomputation, SignedStatement, SpotCheckEvidence,
};
pub use extrinsic::{Era, MultiSignature, SignedExtrinsic, SigningContext};
pub use receipt::{LayerRange, Receipt, ReceiptBody, ReceiptError, SessionId};
pub use slot_lottery::VrfSignature;
pub use training::{
    fixed_to_loss, loss_to_fixed, AdapterOutcome, ContributionCheck, ContributionOutcome,
    GradientReceipt, GradientReceiptBody, RoundResult, RoundVerification, MAX_ACCEPTED_PER_ROUND,
};
pub use units::{format_balance, parse_balance, Balance, BlockNumber, Nonce, UNIT};

use parity_scale_codec::{Decode, Encode};

// Substrate's dispatch errors, defined at the crate root so that their derived type
// paths are `sp_runtime::DispatchError` and `sp_runtime::ModuleError`: subxt finds the
// dispatch error type in the metadata by that path, and polkadot.js reads the module
// error of an `ExtrinsicFailed` event by its shape.

/// Why an included extrinsic's call failed, as Substrate's `sp_runtime::DispatchError`
/// (the variants NeuroShard produces or could, at Substrate's codec indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "sp_runtime"))]
pub enum DispatchError {
    #[codec(index = 0)]
    Other,
    #[codec(index = 1)]
    CannotLookup,
    #[codec(index = 2)]
    BadOrigin,
    /// A pallet's error: the pallet's index and the error's variant index (first byte).
    #[codec(index = 3)]
    Module(ModuleError),
    #[codec(index = 4)]
    ConsumerRemaining,
    #[codec(index = 5)]
    NoProviders,
    #[codec(index = 6)]
    TooManyConsumers,
    #[codec(index = 10)]
    Exhausted,
    /// The state could not be read as written.
    #[codec(index = 11)]
    Corruption,
    #[codec(index = 12)]
    Unavailable,
    #[codec(index = 13)]
    RootNotAllowed,
}

/// Substrate's `sp_runtime::ModuleError`: `index` is the pallet's, `error[0]` the
/// variant index of the error in the pallet's error enum (the metadata names it); the
/// other three bytes are zero (NeuroShard's pallet errors carry no encoded fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
#[scale_info(replace_segment("neuroshard_primitives", "sp_runtime"))]
pub struct ModuleError {
    pub index: u8,
    pub error: [u8; 4],
}
