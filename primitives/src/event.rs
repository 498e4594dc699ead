//! Events the runtime emits while executing a block: what explorers index and what the
//! node's `neuroshard_rewards` RPC reads.

use crate::crypto::{AccountId, Hash};
use crate::receipt::LayerRange;
use crate::training::{AdapterOutcome, ContributionOutcome};
use crate::units::Balance;
use parity_scale_codec::{Decode, Encode};

/// Why a receipt was refused (stable codes; the runtime's errors map onto them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum RejectReason {
    /// The worker's or the client's signature does not verify.
    BadSignature,
    /// The receipt (or a later one of the same worker, session and layers) was already
    /// accepted.
    Replay,
    /// The same receipt appears twice in one batch.
    Duplicate,
    /// The worker is not registered.
    UnknownWorker,
    /// The receipt is for another model than the chain's.
    WrongModel,
    /// The worker did not announce the layers the receipt claims.
    LayersNotServed,
    /// The receipt's epoch is in the future or older than the acceptance window.
    StaleEpoch,
    /// Empty or oversized layer or position ranges.
    BadShape,
    /// The client's escrow cannot pay the receipt's fee.
    InsufficientEscrow,
    /// The worker's bond does not answer for more unsettled work (see `ponw::settlement`).
    ExposureExceeded,
}

impl RejectReason {
    /// Stable lower-case name for RPC and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Replay => "replay",
            RejectReason::Duplicate => "duplicate",
            RejectReason::UnknownWorker => "unknown_worker",
            RejectReason::WrongModel => "wrong_model",
            RejectReason::LayersNotServed => "layers_not_served",
            RejectReason::StaleEpoch => "stale_epoch",
            RejectReason::BadShape => "bad_shape",
            RejectReason::InsufficientEscrow => "insufficient_escrow",
            RejectReason::ExposureExceeded => "exposure_exceeded",
        }
    }
}

/// Something that happened in a block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum Event {
    /// A transfer of free balance.
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: Balance,
    },
    /// A transaction fee was charged and burned.
    FeeBurned { who: AccountId, amount: Balance },
    /// A worker announced the shards it serves.
    WorkerRegistered {
        worker: AccountId,
        model: Hash,
        shards: Vec<LayerRange>,
    },
    /// A worker stopped serving.
    WorkerDeregistered { worker: AccountId },
    /// A receipt was verified and its tokens credited to the worker; the client's
    /// escrow paid `fee`, of which `burned` was destroyed and the rest went to the worker.
    ReceiptAccepted {
        id: Hash,
        worker: AccountId,
        client: AccountId,
        epoch: u32,
        tokens: u32,
        layers: LayerRange,
        fee: Balance,
        burned: Balance,
    },
    /// A client locked escrow for inference fees.
    EscrowDeposited { client: AccountId, amount: Balance },
    /// A client asked for its escrow back; usable until `release_at`.
    EscrowReleaseRequested { client: AccountId, release_at: u64 },
    /// A released escrow returned to free balance.
    EscrowWithdrawn { client: AccountId, amount: Balance },
    /// A worker's uptime minute was credited: `credit_permill` millionths of a minute,
    /// its proven throughput over the chain's reference (at most one minute).
    UptimeCredited {
        worker: AccountId,
        epoch: u32,
        minute: u64,
        credit_permill: u32,
    },
    /// The epoch reward of one account was minted to its free balance.
    RewardPaid {
        account: AccountId,
        epoch: u32,
        /// Raw tokens processed (each stage counts the tokens it ran).
        tokens: u64,
        /// Tokens weighted by layer share, in layer-tokens (tokens x layers run).
        layer_tokens: u64,
        /// Minutes credited (each for a part of a minute, see `uptime_credit`).
        uptime_minutes: u64,
        /// Uptime credit in millionths of a minute (the sum of the minutes' credits).
        uptime_credit: u64,
        /// Training reward part (Proof of Training; zero until training rounds exist).
        training: Balance,
        /// Total minted.
        reward: Balance,
    },
    /// Bond locked.
    Bonded { who: AccountId, amount: Balance },
    /// Bond scheduled for release.
    Unbonded {
        who: AccountId,
        amount: Balance,
        unlock_at: u64,
    },
    /// Unlocked bond returned to free balance.
    Withdrawn { who: AccountId, amount: Balance },
    /// Part of a bond was destroyed as punishment.
    Slashed {
        who: AccountId,
        amount: Balance,
        reason: SlashReason,
    },
    /// A shard holder's gradient receipt was recorded for its shard's current round.
    GradientReceiptSubmitted {
        worker: AccountId,
        model: Hash,
        layers: LayerRange,
        round: u32,
        pseudo_gradient: Hash,
    },
    /// A holder reported its view of a round's aggregate.
    RoundResultReported {
        worker: AccountId,
        layers: LayerRange,
        round: u32,
        result: Hash,
    },
    /// A majority of a round's contributors agreed on its aggregate: the adapter version
    /// `adapter` is now the shard's current one.
    TrainingRoundFinalized {
        model: Hash,
        layers: LayerRange,
        round: u32,
        adapter: Hash,
        accepted: u32,
        rejected: u32,
    },
    /// The training reward of an accepted gradient receipt was minted.
    TrainingRewardPaid {
        account: AccountId,
        layers: LayerRange,
        round: u32,
        amount: Balance,
    },
    /// A training round that did not close within its collection window and the same
    /// again for reports started over: its receipts were dropped unpaid, and `worker`'s
    /// receipt opened the new attempt.
    TrainingRoundRestarted {
        layers: LayerRange,
        round: u32,
        dropped: u32,
        worker: AccountId,
    },
    /// A receipt of an otherwise accepted batch was refused: nothing was credited or
    /// paid for it.
    ReceiptRejected {
        id: Hash,
        worker: AccountId,
        client: AccountId,
        reason: RejectReason,
    },
    /// A registered worker's `minute` was not credited (reported when the next minute
    /// opens): `heartbeat` says whether it showed the model chunk, `probed` whether its
    /// validator's liveness probe passed; uptime needs both.
    ChallengeMissed {
        worker: AccountId,
        minute: u64,
        heartbeat: bool,
        probed: bool,
    },
    /// An accepted receipt was drawn for a spot check (from the randomness of a block
    /// after the one that included it): its earnings are held until the check is
    /// decided; `checker` is the validator drawn to re-run it by `deadline`.
    SpotCheckRequested {
        id: Hash,
        worker: AccountId,
        layers: LayerRange,
        checker: AccountId,
        deadline: u64,
    },
    /// The check now waits for `checker` by `deadline`: the previous checker did not
    /// answer in time (`verdict` none), or its failing verdict needs confirming by an
    /// independently drawn one.
    SpotCheckReassigned {
        id: Hash,
        checker: AccountId,
        deadline: u64,
        verdict: Option<SpotCheckVerdict>,
    },
    /// A sampled receipt's check was decided `Match`: it settles as any other.
    SpotCheckPassed {
        id: Hash,
        worker: AccountId,
        checker: AccountId,
    },
    /// A sampled receipt's check was decided against the worker. `Mismatch` (wrong
    /// work): `slashed` from its bond and burned, all its unsettled earnings forfeited.
    /// `NoAnswer` (material not handed over): unsettled earnings forfeited, bond
    /// untouched. `refunded`: what went back to clients' escrow.
    SpotCheckFailed {
        id: Hash,
        worker: AccountId,
        checker: AccountId,
        verdict: SpotCheckVerdict,
        slashed: Balance,
        refunded: Balance,
        /// What the verdict rested on.
        evidence: crate::evidence::EvidenceSummary,
    },
    /// Receipts of `worker` whose check window closed: `earned` (fees minus burn)
    /// paid from the clients' escrow, `tokens` credited to the epoch's tally.
    EarningsSettled {
        worker: AccountId,
        receipts: u32,
        earned: Balance,
        tokens: u64,
    },
    /// The validator assigned to probe `worker` in `minute` reported whether the worker
    /// answered its seeded shard request in time (`answered`) or not, and the throughput
    /// the answer proved (layer-positions per second; 0 when it failed).
    LivenessProbed {
        worker: AccountId,
        minute: u64,
        prober: AccountId,
        answered: bool,
        throughput: u64,
    },
    /// A worker reserved `amount` more as its bond, which is now `bond`.
    WorkerBondIncreased {
        worker: AccountId,
        amount: Balance,
        bond: Balance,
    },
    /// An extrinsic was included and paid its `fee`, and its call failed (its effects
    /// rolled back): Substrate's `System.ExtrinsicFailed`, its first two fields in
    /// Substrate's layout (what polkadot.js reports as `dispatchError` and names from
    /// the metadata, and subxt decodes), then NeuroShard's own: the extrinsic's hash,
    /// its sender, the fee and `error`, the pallet's message.
    ExtrinsicFailed {
        dispatch_error: crate::DispatchError,
        dispatch_info: crate::DispatchInfo,
        extrinsic: Hash,
        who: AccountId,
        fee: Balance,
        error: String,
    },
    /// A training round closed and `verifier` (a validator drawn from the block's
    /// randomness) must verify its contributions before anything is paid or adopted.
    TrainingVerificationRequested {
        layers: LayerRange,
        round: u32,
        verifier: AccountId,
    },
    /// The verdict on one gradient receipt of a closed round.
    TrainingContributionVerified {
        worker: AccountId,
        layers: LayerRange,
        round: u32,
        outcome: ContributionOutcome,
    },
    /// The verdict on a closed round's adapter version (adopted for serving or not),
    /// with the held-out losses the verifier measured for the adopted version and for
    /// this one (micro-nats; 0 when not measured).
    TrainingAdapterVerified {
        layers: LayerRange,
        round: u32,
        adapter: Hash,
        outcome: AdapterOutcome,
        held_out_before: u32,
        held_out_after: u32,
    },
    /// A checker's verdict that its own evidence refutes (a `Mismatch` whose recomputed
    /// commitment matches the worker's, or a `Match` whose does not) was not taken: the
    /// checker is slashed (`refuted_verdict`) and the check goes to another checker.
    SpotCheckVerdictRefuted {
        id: Hash,
        checker: AccountId,
        verdict: SpotCheckVerdict,
        /// The recomputed commitment's largest position distance from the worker's, in
        /// millionths.
        distance_ppm: u32,
    },
    /// An extrinsic was included, paid its `fee` (0 for a free call) and its call
    /// succeeded: Substrate's `System.ExtrinsicSuccess`, which explorers read as the
    /// extrinsic's status. Its first field is Substrate's `DispatchInfo`, then
    /// NeuroShard's own. (Last, so older variants keep their codec indices.)
    ExtrinsicSuccess {
        dispatch_info: crate::DispatchInfo,
        extrinsic: Hash,
        who: AccountId,
        fee: Balance,
    },
    /// A transfer left `account` below the existential deposit: it was reaped, the
    /// rest of its balance (`amount`, dust) burned (Substrate's `Balances.DustLost`).
    DustLost { account: AccountId, amount: Balance },
    /// A hidden check (`NoAnswer`) left `worker` owing `amount` more of a failed check's
    /// slash beyond the fees it forfeited; it now owes `owed`, which its next settling
    /// receipts pay (or its bond when released).
    ForfeitOwed {
        worker: AccountId,
        amount: Balance,
        owed: Balance,
    },
    /// `worker` paid `amount` of what it owes: with `receipts` settling receipts (their
    /// fees burned whole, their tokens not credited), or from its released bond
    /// (`from_bond`); `owed` is what is left.
    ForfeitPaid {
        worker: AccountId,
        receipts: u32,
        amount: Balance,
        owed: Balance,
        from_bond: bool,
    },
}

/// A validator's verdict on a sampled receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum SpotCheckVerdict {
    /// Re-running the layers on the committed inputs gave the committed activations.
    Match,
    /// The worker's material does not attest the work (wrong activations, inputs that
    /// do not hash to the receipt's, malformed).
    Mismatch,
    /// The worker did not hand over the receipt's material.
    NoAnswer,
}

impl SpotCheckVerdict {
    /// Stable lower-case name for RPC and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SpotCheckVerdict::Match => "match",
            SpotCheckVerdict::Mismatch => "mismatch",
            SpotCheckVerdict::NoAnswer => "no_answer",
        }
    }
}

/// Why a bond was slashed (stable codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum SlashReason {
    /// Two different blocks sealed for one slot.
    Equivocation { slot: u64 },
    /// An inference receipt failed its spot check.
    FailedSpotCheck { receipt: Hash },
    /// A validator's spot-check verdict was contradicted by the checkers' majority.
    WrongVerdict { receipt: Hash },
    /// A validator's spot-check verdict was refuted by its own evidence.
    RefutedVerdict { receipt: Hash },
    /// A gradient receipt's claimed losses were contradicted by the validator's replay.
    ContradictedTraining { layers: LayerRange, round: u32 },
    /// A worker's capacity claim for a minute was refuted by its audit or left unopened.
    FalseCapacityClaim { minute: u64 },
}

impl SlashReason {
    /// Stable lower-case name for RPC and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SlashReason::Equivocation { .. } => "equivocation",
            SlashReason::FailedSpotCheck { .. } => "failed_spot_check",
            SlashReason::WrongVerdict { .. } => "wrong_verdict",
            SlashReason::RefutedVerdict { .. } => "refuted_verdict",
            SlashReason::ContradictedTraining { .. } => "contradicted_training",
            SlashReason::FalseCapacityClaim { .. } => "false_capacity_claim",
        }
    }
}
