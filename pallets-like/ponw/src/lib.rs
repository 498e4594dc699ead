//! Proof of Neural Work: workers announce the shards they serve, batches of inference
//! receipts (signed by worker and client) credit layer-weighted tokens, a minute of
//! uptime is credited when the worker both showed the model chunk the minute's challenge
//! names and answered its validator's liveness probe (see [`liveness`]), and at each
//! epoch boundary every account with credited work is paid
//! `tokens x token_reward (layer-weighted) + uptime_minutes x uptime_reward`.
//!
//! Clients pay for the work they counter-sign from an escrow, and part of every fee is
//! burned so that self-dealing never pays (see [`escrow`]).
//!
//! An accepted receipt's earnings are held for its check window and drawn for a spot
//! check from a later block's randomness (see [`settlement`]); a sampled one settles only
//! when independently drawn validators agree its re-run matches, and a check decided
//! against the worker forfeits everything it holds and, for wrong work, slashes its bond
//! in proportion to the fee (see [`spot_checks`]).
//!
//! A batch is judged receipt by receipt: the good ones are held for settlement, each bad
//! one (bad signature, replay, duplicate, unknown worker, wrong model, layers not served,
//! stale epoch, bad shape, client escrow too small, worker bond too small for more
//! unsettled work) gets a `ReceiptRejected` event with
//! the reason; a batch with no good receipt fails as a whole and writes nothing.

pub mod capacity;
pub mod capacity_audit;
pub mod escrow;
pub mod evidence;
pub mod liveness;
mod metadata;
pub mod owed;
mod receipts;
mod rewards;
pub mod settlement;
pub mod spot_checks;
mod workers;

pub use liveness::{
    challenge, heartbeat, probe_instant_ms, probe_of, probe_tasks, prober_of, report_liveness,
    Challenge, ProbeRecord, ProbeTask, MINUTE_SEED,
};
pub use metadata::metadata;
pub use receipts::{precheck_receipts, submit_receipts, PRECHECK_SAMPLE};
pub use receipts::{SessionState, SESSIONS};
pub use rewards::{on_epoch_start, reward_for, tallies, WorkTally, TALLIES};
pub use spot_checks::{submit_verdict, PendingCheck};
pub use workers::{
    bond_more, deregister_worker, register_worker, retired_bond, worker, WorkerInfo, WORKERS,
};

use neuroshard_balances as balances;
use neuroshard_primitives::{Balance, Hash, RejectReason};
use neuroshard_support::{Overlay, Pallet, ReadState, StorageError, StorageValue};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub struct Ponw;

impl Pallet for Ponw {
    const NAME: &'static str = "Ponw";
    const INDEX: u8 = 1;
    const EVENTS: &'static [&'static str] = &[
        "WorkerRegistered",
        "WorkerDeregistered",
        "ReceiptAccepted",
        "EscrowDeposited",
        "EscrowReleaseRequested",
        "EscrowWithdrawn",
        "UptimeCredited",
        "RewardPaid",
        "ReceiptRejected",
        "ChallengeMissed",
        "SpotCheckRequested",
        "SpotCheckReassigned",
        "SpotCheckPassed",
        "SpotCheckFailed",
        "EarningsSettled",
        "LivenessProbed",
        "WorkerBondIncreased",
        "SpotCheckVerdictRefuted",
        "ForfeitOwed",
        "ForfeitPaid",
    ];
}

/// The model the chain pays for.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct ModelInfo {
    /// blake2-256 of the model file.
    pub hash: Hash,
    /// Transformer layers in the model; a token through all of them earns one
    /// `token_reward`.
    pub num_layers: u16,
    /// Per transformer layer, the Merkle root over its bytes' chunks and their number
    /// (see `neuroshard_primitives::model_chunks`): what a worker shows possession of.
    pub layer_chunks: Vec<neuroshard_primitives::model_chunks::LayerChunks>,
    /// Chunk size in bytes.
    pub chunk_size: u32,
    /// The canonical layer ranges, tiling layers `0..num_layers`: training rounds are
    /// per canonical range (so nobody opens rounds for ranges of their choosing). The
    /// chain spec fills it from its model descriptor, the list serving nodes use too.
    #[serde(default)]
    pub shards: Vec<neuroshard_primitives::LayerRange>,
}

impl ModelInfo {
    /// Whether `shards` tiles `0..num_layers` in order without gaps or overlaps.
    pub fn shards_tile(&self) -> bool {
        self.shards.first().is_some_and(|s| s.start == 0)
            && self.shards.last().is_some_and(|s| s.end == self.num_layers)
            && self.shards.windows(2).all(|w| w[0].end == w[1].start)
            && self.shards.iter().all(|s| s.start < s.end)
    }

    /// Whether `layers` is one of the canonical ranges.
    pub fn is_canonical(&self, layers: &neuroshard_primitives::LayerRange) -> bool {
        self.shards.contains(layers)
    }
}

/// Chain-spec parameters of the pallet.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct Params {
    pub model: ModelInfo,
    /// Reward per token processed through the whole model, base units (0.1 NSHD).
    #[serde(with = "balances::decimal_string")]
    pub token_reward: Balance,
    /// Reward per verified uptime minute, base units (1.0 NSHD).
    #[serde(with = "balances::decimal_string")]
    pub uptime_reward: Balance,
    /// Receipts of epoch `e` are accepted while the current epoch is at most `e + window`.
    pub receipt_epoch_window: u32,
    /// Most receipts in one `submit_receipts` call.
    pub max_receipts_per_batch: u32,
    /// Most shards one worker may announce.
    pub max_shards_per_worker: u32,
    /// What a client pays per token processed through the whole model, base units
    /// (split between the stages by layers, like the reward).
    #[serde(with = "balances::decimal_string")]
    pub client_fee_per_token: Balance,
    /// Share of each fee that is burned, in millionths; `client_fee_per_token x
    /// fee_burn_permill / 1e6` must be at least `token_reward`.
    pub fee_burn_permill: u32,
    /// Blocks between a client's escrow release request and the withdrawal.
    pub escrow_release_blocks: u64,
    /// Reserved from a worker's balance when it registers; failed spot checks slash it.
    #[serde(with = "balances::decimal_string")]
    pub worker_bond: Balance,
    /// Share of accepted receipts drawn for a spot check, in millionths.
    pub spot_check_permill: u32,
    /// Blocks a validator has to return a sampled receipt's verdict (unanswered checks
    /// are then credited).
    pub spot_check_blocks: u64,
    /// Slashed from the worker's bond per failed check (at most the bond).
    #[serde(with = "balances::decimal_string")]
    pub spot_check_slash: Balance,
    /// The capacity probes behind uptime credit (see [`liveness`]).
    #[serde(default)]
    pub probe: ProbeParams,
    /// Capacity claims on chain time and their audits (see [`capacity`]).
    #[serde(default)]
    pub capacity: capacity::CapacityParams,
}

/// Chain-spec parameters of the capacity probes (issue 21; see `docs/PONW-SECURITY.md`).
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
#[serde(default)]
pub struct ProbeParams {
    /// Positions of each probe job's input: prefill-sized, so that a batch of many
    /// accounts' jobs costs what the positions cost (at most 128).
    pub positions: u32,
    /// The window in which a probed worker runs as many jobs as it can, in
    /// milliseconds: every probe of a minute covers the same window, so accounts sharing
    /// a machine share its work in it.
    pub window_ms: u32,
    /// Time allowed for the answer beyond the window, one job at the worker's
    /// advertised throughput and its path's round trip, in milliseconds.
    pub deadline_slack_ms: u32,
    /// Layer-positions per second of probe work that earn a whole minute of uptime (a
    /// modest machine's figure): a minute is credited `min(1, proven / reference)`.
    pub reference_throughput: u64,
    /// Share of an answer's jobs the prober re-runs to check it, in millionths (at
    /// least two jobs per answer).
    pub sample_permill: u32,
}

impl Default for ProbeParams {
    fn default() -> Self {
        Self {
            positions: 32,
            window_ms: 1_000,
            deadline_slack_ms: 1_000,
            reference_throughput: 13_000,
            sample_permill: 50_000,
        }
    }
}

impl ProbeParams {
    /// The credit, in millionths of a minute, of a proven `throughput`.
    pub fn credit_permill(&self, throughput: u64) -> u32 {
        let reference = u128::from(self.reference_throughput.max(1));
        (u128::from(throughput) * 1_000_000 / reference).min(1_000_000) as u32
    }
}

pub const PARAMS: StorageValue<Params> = StorageValue::new(Ponw::NAME, "Params");
/// The epoch whose work the tallies currently accumulate.
pub const CURRENT_EPOCH: StorageValue<u32> = StorageValue::new(Ponw::NAME, "CurrentEpoch");

#[derive(Debug, Error, Clone, PartialEq, Eq, scale_info::TypeInfo)]
pub enum Error {
    #[error("receipt #{index} rejected: {}", reason.as_str())]
    ReceiptRejected { index: u32, reason: RejectReason },
    #[error("batch of {count} receipts exceeds the limit of {limit}")]
    TooManyReceipts {
        #[codec(skip)]
        count: usize,
        limit: u32,
    },
    #[error("empty receipt batch")]
    EmptyBatch,
    #[error("account is not a registered worker")]
    NotAWorker,
    #[error("model {0:?} is not the chain's model")]
    WrongModel(Hash),
    #[error(
        "shard list is empty, too long, overlapping or beyond the model's {num_layers} layers"
    )]
    BadShards { num_layers: u16 },
    #[error("heartbeat for minute {claimed} but the block is in minute {current}")]
    WrongMinute { claimed: u64, current: u64 },
    #[error("no liveness challenge for minute {0} yet (its first block is not in)")]
    NoChallenge(u64),
    #[error("the model chunk does not answer the minute's challenge (wrong bytes or proof)")]
    WrongChunk,
    #[error("a heartbeat for minute {0} was already accepted")]
    HeartbeatAlreadyAccepted(u64),
    #[error("a liveness report may name at most 1024 workers, this one names {count}")]
    TooManyLivenessEntries {
        #[codec(skip)]
        count: usize,
    },
    #[error("the liveness report records nothing (no worker it names is this validator's to probe, or all were already reported)")]
    NothingToReport,
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("no spot check is pending for receipt {0:?}")]
    NoPendingCheck(Hash),
    #[error("this check is assigned to another validator")]
    NotTheChecker,
    #[error("spot-check evidence rejected: {0}")]
    Evidence(#[from] evidence::EvidenceError),
    #[error("no validator to assign a spot check to")]
    NoValidators,
    #[error("only validators may submit spot-check verdicts and liveness reports")]
    NotAValidator,
    #[error("the model's canonical shards do not tile its layers")]
    ShardsDoNotTile,
    #[error("the model needs one chunk root per layer and a positive chunk size")]
    LayerChunksMismatch,
    #[error("the slash per failed spot check exceeds the worker bond")]
    SlashAboveBond,
    #[error("no escrow to release")]
    NoEscrow,
    #[error("escrow release already requested")]
    ReleaseAlreadyRequested,
    #[error("request the escrow release first")]
    ReleaseNotRequested,
    #[error("escrow is locked until block {until}")]
    EscrowLocked { until: u64 },
    #[error("client fee x burn share is below the token reward: self-dealing would pay")]
    BurnBelowReward,
    #[error("pallet parameters missing from state (genesis not built?)")]
    MissingParams,
    #[error("the capacity slash exceeds the worker bond")]
    CapacitySlashAboveBond,
    #[error("capacity: {0}")]
    Capacity(#[codec(skip)] Box<capacity::CapacityError>),
    #[error(transparent)]
    Balances(#[from] balances::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<capacity::CapacityError> for Error {
    fn from(e: capacity::CapacityError) -> Self {
        match e {
            capacity::CapacityError::Pallet(e) => e,
            capacity::CapacityError::Storage(e) => Error::Storage(e),
            other => Error::Capacity(Box::new(other)),
        }
    }
}

pub fn params(state: &impl ReadState) -> Result<Params> {
    PARAMS.get(state)?.ok_or(Error::MissingParams)
}

/// Start-of-block work: record the minute's challenge seed and capacity beacon (slots of
/// `slot_duration_ms`), pay out a finished epoch, draw, credit and time out capacity
/// claims, draw and settle receipts, hand overdue checks to other checkers (drawn from
/// `validators`, the current set with each staking bond).
pub fn on_initialize(
    overlay: &mut Overlay<'_>,
    ctx: &neuroshard_support::BlockContext,
    validators: &[(
        neuroshard_primitives::AccountId,
        neuroshard_primitives::Balance,
    )],
    slot_duration_ms: u64,
) -> Result<()> {
    liveness::record_minute_seed(overlay, ctx)?;
    capacity::record_beacon(overlay, ctx, slot_duration_ms)?;
    rewards::on_epoch_start(overlay, ctx)?;
    capacity_audit::on_initialize(overlay, ctx, validators)?;
    spot_checks::reassign_overdue(overlay, ctx, validators)?;
    settlement::on_initialize(overlay, ctx, validators)
}

/// Genesis: parameters and pre-registered workers (the dev node's own miner).
pub fn build_genesis(
    overlay: &mut Overlay<'_>,
    p: &Params,
    workers: &[(
        neuroshard_primitives::AccountId,
        Vec<neuroshard_primitives::LayerRange>,
    )],
) -> Result<()> {
    if !escrow::burn_covers_reward(p) {
        return Err(Error::BurnBelowReward);
    }
    if p.spot_check_slash > p.worker_bond {
        return Err(Error::SlashAboveBond);
    }
    if p.capacity.slash > p.worker_bond {
        return Err(Error::CapacitySlashAboveBond);
    }
    if !p.model.shards_tile() {
        return Err(Error::ShardsDoNotTile);
    }
    if p.model.layer_chunks.len() != usize::from(p.model.num_layers) || p.model.chunk_size == 0 {
        return Err(Error::LayerChunksMismatch);
    }
    PARAMS.put(overlay, p);
    CURRENT_EPOCH.put(overlay, &0);
    for (who, shards) in workers {
        register_worker(overlay, 0, who, p.model.hash, shards.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod capacity_audit_tests;
#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod capacity_wiring_tests;
#[cfg(test)]
mod evidence_tests;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod liveness_attack_tests;
#[cfg(test)]
mod liveness_tests;
#[cfg(test)]
mod owed_tests;
#[cfg(test)]
mod spot_check_tests;
#[cfg(test)]
mod tests;
