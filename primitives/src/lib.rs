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
pub mod event;
pub mod evidence;
pub mod extrinsic;
pub mod merkle;
pub mod model_chunks;
pub mod receipt;
pub mod slot_lottery;
pub mod training;
pub mod units;

pub use block::{Block, Header};
pub use call::{BalancesCall, Call, PonwCall, StakingCall, TrainingCall};
pub use crypto::{
    blake2_256, parse_account, AccountId, Hash, Keypair, Public, Signature, SIGNING_CONTEXT,
};
pub use digest::{ConsensusEngineId, Digest, DigestItem, PreDigest};
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
