//! Proof of Training on chain: training rounds per (model, shard), the gradient receipts
//! the shard's holders submit for the current round, the round results they report once
//! they have aggregated the round's pseudo-gradients with a Byzantine-robust rule, and
//! the training reward.
//!
//! A round of a shard closes when a strict majority of the round's contributors (and at
//! least `min_contributors` of them) report the same result: the set of pseudo-gradient
//! hashes the robust rule kept and the hash of the adapter version the outer step
//! produced. Then the adapter version is recorded for that round and the shard moves to
//! the next round, whose receipts must start from that adapter version. Nothing is paid
//! and nothing is served yet: a drawn validator verifies the closed round first
//! ([`verify`]); the receipts the aggregate accepted and the validator found to lower
//! the loss share the round's `training_reward` (minted), and serving nodes adopt the
//! version only when the validator found its snapshot available and not worse on
//! held-out text ([`ShardTraining::adopted`]). Receipts the aggregate excluded (a
//! poisoned pseudo-gradient) are recorded but earn nothing. Rounds exist only for the
//! chain's canonical layer ranges (`ModelInfo::shards`), and only registered workers
//! announcing a shard that covers the range may contribute, one receipt per worker per
//! round, each with a pseudo-gradient hash no other receipt of the round has.

mod rounds;
pub mod verify;

pub use rounds::{report_round_result, submit_gradient_receipt};
pub use verify::{awaiting, submit_round_verification, AwaitingVerification, Verifiers};

use neuroshard_balances as balances;
use neuroshard_primitives::{
    AccountId, Balance, BlockNumber, ContributionOutcome, Hash, LayerRange,
};
use neuroshard_support::{Overlay, Pallet, ReadState, StorageError, StorageMap, StorageValue};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub struct Training;

impl Pallet for Training {
    const NAME: &'static str = "Training";
    const INDEX: u8 = 3;
    const EVENTS: &'static [&'static str] = &[
        "GradientReceiptSubmitted",
        "RoundResultReported",
        "TrainingRoundFinalized",
        "TrainingRewardPaid",
        "TrainingRoundRestarted",
        "TrainingVerificationRequested",
        "TrainingContributionVerified",
        "TrainingAdapterVerified",
    ];
}

/// Chain-spec parameters of the pallet.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct Params {
    /// Minted for every verified round, split equally among the gradient receipts its
    /// aggregate accepted and its verifier found to lower the loss, base units (so more
    /// accounts never mint more).
    #[serde(with = "balances::decimal_string")]
    pub training_reward: Balance,
    /// A round closes only when at least this many contributors agree on its result.
    pub min_contributors: u32,
    /// Most gradient receipts one round of one shard takes.
    pub max_contributors: u32,
    /// Blocks a round collects receipts for, counted from its first receipt; results
    /// may be reported only after that. Every holder then aggregates exactly the
    /// receipts the chain recorded, so honest holders agree on the set. A round that has
    /// not closed `collect_blocks` after its window either starts over at its next
    /// receipt (its receipts dropped unpaid). 0: no window (receipts and reports any
    /// time; for in-process use).
    #[serde(default)]
    pub collect_blocks: u32,
    /// Blocks the drawn validator has to verify a closed round; after that any
    /// validator may.
    #[serde(default = "default_verify_blocks")]
    pub verify_blocks: u32,
    /// Taken from the bond of a worker whose claimed losses a verification
    /// contradicted, base units.
    #[serde(default, with = "balances::decimal_string")]
    pub contradiction_slash: Balance,
}

fn default_verify_blocks() -> u32 {
    20
}

/// A shard's training state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ShardTraining {
    /// The round receipts are accepted for.
    pub round: u32,
    /// The adapter version the last closed round produced (None before the first).
    pub adapter: Option<Hash>,
    /// Block of the open round's first receipt (None: no receipt yet).
    pub opened_at: Option<BlockNumber>,
    /// The newest verified adapter version (round, version): what serving nodes run
    /// (None: the base model).
    pub adopted: Option<(u32, Hash)>,
}

impl ShardTraining {
    /// The last block the open round takes receipts in (None: no receipt yet, or no
    /// window).
    pub fn collecting_until(&self, collect_blocks: u32) -> Option<BlockNumber> {
        (collect_blocks > 0)
            .then_some(self.opened_at?)
            .map(|t| t.saturating_add(BlockNumber::from(collect_blocks)))
    }

    /// At block `now`, the end of the open round's collection window when the reporting
    /// period after it (`collect_blocks` more) is over too without the round closing:
    /// the round is stale and its next receipt starts it over.
    pub fn stale_window(&self, collect_blocks: u32, now: BlockNumber) -> Option<BlockNumber> {
        let until = self.collecting_until(collect_blocks)?;
        (now > until.saturating_add(BlockNumber::from(collect_blocks))).then_some(until)
    }
}

/// One gradient receipt recorded for a round.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct GradientRecord {
    pub worker: AccountId,
    /// Id of the signed receipt.
    pub receipt: Hash,
    pub pseudo_gradient: Hash,
    pub loss_before: u32,
    pub loss_after: u32,
    /// Set when the round closes: whether the aggregate kept this pseudo-gradient.
    pub accepted: Option<bool>,
    /// Set when the round is verified: the validator's verdict on this receipt.
    pub verified: Option<ContributionOutcome>,
}

/// A closed round's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ClosedRound {
    pub adapter: Hash,
    pub accepted: Vec<Hash>,
}

/// Shard key: (model, layers).
pub type ShardKey = (Hash, LayerRange);
/// Round key: (model, layers, round).
pub type RoundKey = (Hash, LayerRange, u32);

pub const PARAMS: StorageValue<Params> = StorageValue::new(Training::NAME, "Params");
/// Current round and adapter version per shard.
pub const SHARDS: StorageMap<ShardKey, ShardTraining> = StorageMap::new(Training::NAME, "Shards");
/// The gradient receipts of every round (kept after the round closes, as its record).
pub const RECEIPTS: StorageMap<RoundKey, Vec<GradientRecord>> =
    StorageMap::new(Training::NAME, "Receipts");
/// Results reported for the open round: (reporter, result id).
pub const VOTES: StorageMap<RoundKey, Vec<(AccountId, Hash)>> =
    StorageMap::new(Training::NAME, "Votes");
/// Adapter versions and accepted sets of closed rounds.
pub const CLOSED: StorageMap<RoundKey, ClosedRound> = StorageMap::new(Training::NAME, "Closed");
/// Training rewards earned per account, all time (for RPC).
pub const EARNED: StorageMap<AccountId, Balance> = StorageMap::new(Training::NAME, "Earned");

#[derive(Debug, Error, Clone, PartialEq, Eq, scale_info::TypeInfo)]
pub enum Error {
    #[error("gradient receipt signature does not verify")]
    BadSignature,
    #[error("model {0:?} is not the chain's model")]
    WrongModel(Hash),
    #[error("layers {0} are not one of the chain's canonical ranges")]
    NotACanonicalRange(LayerRange),
    #[error("worker is not registered for a shard covering layers {0}")]
    NotAHolder(LayerRange),
    #[error("shard's current round is {expected}, got {got}")]
    WrongRound { expected: u32, got: u32 },
    #[error("receipt starts from adapter {got:?}, the shard's current version is {expected:?}")]
    WrongBaseAdapter { expected: Hash, got: Hash },
    #[error("worker already submitted a receipt for this round")]
    DuplicateReceipt,
    #[error("another receipt of this round already has pseudo-gradient {0:?}")]
    DuplicateGradient(Hash),
    #[error("no validator to verify the round")]
    NoValidators,
    #[error("the round is not waiting for verification")]
    NotAwaitingVerification,
    #[error("only the round's drawn verifier may verify it (any validator once overdue)")]
    NotTheVerifier,
    #[error("the verification does not list the round's receipts in order")]
    BadVerification,
    #[error("round already has the maximum of {0} receipts")]
    RoundFull(u32),
    #[error("round {round} stopped collecting receipts after block {until}")]
    CollectionClosed { round: u32, until: BlockNumber },
    #[error("round {round} collects receipts until block {until:?}; report after it")]
    CollectionOpen {
        round: u32,
        until: Option<BlockNumber>,
    },
    #[error("only a worker with a receipt in the round may report its result")]
    NotAContributor,
    #[error("worker already reported this round's result")]
    AlreadyReported,
    #[error("accepted set is empty, unsorted, has duplicates or is too long")]
    BadAcceptedSet,
    #[error("accepted pseudo-gradient {0:?} has no receipt in the round")]
    UnknownGradient(Hash),
    #[error("pallet parameters missing from state (genesis not built?)")]
    MissingParams,
    #[error(transparent)]
    Balances(#[from] balances::Error),
    #[error(transparent)]
    Ponw(#[from] neuroshard_ponw::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The pallet's declarations for the runtime metadata; the constants are read from
/// `state`.
pub fn metadata(state: &impl ReadState) -> Result<neuroshard_support::PalletDecl> {
    let p = params(state)?;
    Ok(
        neuroshard_support::PalletDecl::new(Training::NAME, Training::INDEX)
            .calls::<neuroshard_primitives::TrainingCall>()
            .events::<Training>()
            .errors::<Error>()
            .storage(vec![
                PARAMS.metadata("The pallet's chain-spec parameters."),
                SHARDS.metadata("Current round and adapter version per shard."),
                RECEIPTS.metadata("The gradient receipts of every round."),
                VOTES.metadata("Results reported for the open round."),
                CLOSED.metadata("Adapter versions and accepted sets of closed rounds."),
                EARNED.metadata("Training rewards earned per account, all time."),
                verify::AWAITING.metadata("Closed rounds awaiting verification."),
            ])
            .constants(vec![neuroshard_support::constant(
                "Params",
                &p,
                "The pallet's chain-spec parameters.",
            )]),
    )
}

pub fn params(state: &impl ReadState) -> Result<Params> {
    PARAMS.get(state)?.ok_or(Error::MissingParams)
}

/// The training state of a shard (round 0, no adapter, when never trained).
pub fn shard(state: &impl ReadState, model: Hash, layers: LayerRange) -> Result<ShardTraining> {
    Ok(SHARDS.get(state, &(model, layers))?.unwrap_or_default())
}

/// The receipts recorded for a round.
pub fn receipts(state: &impl ReadState, key: &RoundKey) -> Result<Vec<GradientRecord>> {
    Ok(RECEIPTS.get(state, key)?.unwrap_or_default())
}

/// The outcome of a closed round.
pub fn closed_round(state: &impl ReadState, key: &RoundKey) -> Result<Option<ClosedRound>> {
    Ok(CLOSED.get(state, key)?)
}

/// The adapter version serving nodes of a shard run: the newest verified one (`None`:
/// the base model).
pub fn adopted(state: &impl ReadState, model: Hash, layers: LayerRange) -> Result<Option<Hash>> {
    Ok(shard(state, model, layers)?.adopted.map(|(_, v)| v))
}

/// Training rewards `who` has earned.
pub fn earned(state: &impl ReadState, who: &AccountId) -> Result<Balance> {
    Ok(EARNED.get(state, who)?.unwrap_or(0))
}

/// Genesis: the parameters.
pub fn build_genesis(overlay: &mut Overlay<'_>, p: &Params) -> Result<()> {
    PARAMS.put(overlay, p);
    Ok(())
}

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
