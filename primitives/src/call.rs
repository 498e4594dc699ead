//! Calls: what an extrinsic (see [`crate::extrinsic`]) asks the runtime to do, routed by
//! pallet. The SCALE encoding of [`Call`] is the pallet index then the call index, as in
//! Substrate, and the runtime metadata describes it.

use crate::crypto::{AccountId, Hash};
use crate::receipt::{LayerRange, Receipt};
use crate::training::{GradientReceipt, RoundResult, RoundVerification};
use crate::units::Balance;
use parity_scale_codec::{Decode, Encode};

/// Calls of the balances pallet, named and indexed as Substrate's `pallet_balances`:
/// FRAME's call enums have snake_case variants, and the metadata's variant names are
/// what tools call them by (`api.tx.balances.transferKeepAlive`, subxt's
/// `tx("Balances", "transfer_keep_alive", ..)`).
#[allow(non_camel_case_types)]
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum BalancesCall {
    /// Move `value` base units of free balance to `dest`; a sender left below the
    /// existential deposit is reaped (the rest of its balance burned).
    #[codec(index = 0)]
    transfer_allow_death {
        dest: AccountId,
        #[codec(compact)]
        value: Balance,
    },
    /// Move `value` base units of free balance to `dest`, refused if it would leave the
    /// sender below the existential deposit.
    #[codec(index = 3)]
    transfer_keep_alive {
        dest: AccountId,
        #[codec(compact)]
        value: Balance,
    },
}

/// Calls of the Proof-of-Neural-Work pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum PonwCall {
    /// Announce that the signer serves `shards` of `model` and may earn for them.
    RegisterWorker {
        model: Hash,
        shards: Vec<LayerRange>,
    },
    /// Stop serving; no further receipts or uptime for the signer.
    DeregisterWorker,
    /// A batch of inference receipts (each signed by worker and client).
    SubmitReceipts { receipts: Vec<Receipt> },
    /// The signer (a registered worker) is up during wall-clock `minute` and still holds
    /// the model: `chunk` is the model-file chunk the minute's challenge names for it, with
    /// its Merkle `proof` against the chain's model chunk root.
    Heartbeat {
        minute: u64,
        chunk: Vec<u8>,
        proof: Vec<Option<Hash>>,
    },
    /// Lock `amount` of free balance as escrow that pays for inference the signer asks
    /// for (receipts it counter-signs draw their fees from it).
    DepositEscrow {
        #[codec(compact)]
        amount: Balance,
    },
    /// Announce that the escrow will be withdrawn; it stays usable until the release
    /// delay has passed, so workers serving the signer are still paid.
    RequestEscrowRelease,
    /// Take back what is left of a released escrow.
    WithdrawEscrow,
    /// A validator's verdict on a receipt drawn for a spot check, with its evidence
    /// (which the chain checks: see `ponw::evidence`).
    SubmitSpotCheck {
        receipt: Hash,
        verdict: crate::event::SpotCheckVerdict,
        evidence: crate::evidence::SpotCheckEvidence,
    },
    /// A validator's capacity probes of `minute`: the workers assigned to it (see
    /// `ponw::prober_of`) that answered its seeded request (`answered`, each with the
    /// throughput it proved: layer-positions per second, the answer's time less the
    /// path's round trip) and those that refused, missed the deadline or answered wrong
    /// (`failed`). A worker's minute of uptime is credited once it is both probed and
    /// heartbeated, in proportion to the throughput proved (see `ponw::liveness`).
    ReportLiveness {
        minute: u64,
        answered: Vec<(AccountId, u64)>,
        failed: Vec<AccountId>,
    },
    /// Reserve `amount` more of the signer's free balance as its worker bond: a bigger
    /// bond answers for more unsettled work (see `ponw::settlement`) and is slashable.
    BondMore {
        #[codec(compact)]
        amount: Balance,
    },
    /// A registered worker's capacity claim for `minute` (issue 24): it finished `jobs`
    /// capacity jobs bound to the minute's beacon and its account, and `root` is the
    /// Merkle root of their commitments' leaves in job order (see `ponw::capacity`).
    ClaimCapacity { minute: u64, jobs: u32, root: Hash },
    /// The worker opens the jobs its audited claim for `minute` was drawn to show: one
    /// `(encoded commitment, Merkle path)` per drawn index, in the audit's order (see
    /// `ponw::capacity_audit`).
    OpenCapacity {
        minute: u64,
        leaves: Vec<(Vec<u8>, Vec<Option<Hash>>)>,
    },
    /// The drawn auditor's recomputed commitment of each job `worker` opened for
    /// `minute`; the chain decides whether they match.
    CapacityVerdict {
        worker: AccountId,
        minute: u64,
        recomputed: Vec<Vec<u8>>,
    },
}

/// Calls of the staking pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum StakingCall {
    /// Lock `amount` of free balance as bond.
    Bond {
        #[codec(compact)]
        amount: Balance,
    },
    /// Start unlocking `amount` of bond; it becomes free after the unbonding period.
    Unbond {
        #[codec(compact)]
        amount: Balance,
    },
    /// Move every unlocked unbonding chunk back to free balance.
    WithdrawUnbonded,
    /// Evidence that one author sealed two different blocks for the same slot; anyone
    /// may submit it, and the author's bond is slashed.
    ReportEquivocation {
        first: Box<crate::block::Header>,
        second: Box<crate::block::Header>,
    },
}

/// Calls of the training pallet (Proof of Training).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum TrainingCall {
    /// A shard holder's signed gradient receipt for the shard's current round.
    SubmitGradientReceipt { receipt: GradientReceipt },
    /// The signer (a holder with a receipt in the round) reports the round's robust
    /// aggregate: which pseudo-gradients were kept and the new adapter version. The round
    /// closes when a majority of the round's contributors report the same result.
    ReportRoundResult { result: RoundResult },
    /// The validator drawn to verify a closed round (any validator once the round's
    /// verification is overdue) submits its verdicts: the round's reward is paid to the
    /// accepted receipts it found `Improved`, contradicted workers are slashed, and the
    /// adapter version is adopted for serving when it says so.
    SubmitRoundVerification { verification: RoundVerification },
}

/// Any call, routed by pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum Call {
    #[codec(index = 0)]
    Balances(BalancesCall),
    #[codec(index = 1)]
    Ponw(PonwCall),
    #[codec(index = 2)]
    Staking(StakingCall),
    #[codec(index = 3)]
    Training(TrainingCall),
}

impl Call {
    /// "pallet.call" name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Balances(BalancesCall::transfer_allow_death { .. }) => {
                "balances.transfer_allow_death"
            }
            Call::Balances(BalancesCall::transfer_keep_alive { .. }) => {
                "balances.transfer_keep_alive"
            }
            Call::Ponw(PonwCall::RegisterWorker { .. }) => "ponw.register_worker",
            Call::Ponw(PonwCall::DeregisterWorker) => "ponw.deregister_worker",
            Call::Ponw(PonwCall::SubmitReceipts { .. }) => "ponw.submit_receipts",
            Call::Ponw(PonwCall::Heartbeat { .. }) => "ponw.heartbeat",
            Call::Ponw(PonwCall::DepositEscrow { .. }) => "ponw.deposit_escrow",
            Call::Ponw(PonwCall::RequestEscrowRelease) => "ponw.request_escrow_release",
            Call::Ponw(PonwCall::WithdrawEscrow) => "ponw.withdraw_escrow",
            Call::Ponw(PonwCall::SubmitSpotCheck { .. }) => "ponw.submit_spot_check",
            Call::Ponw(PonwCall::ReportLiveness { .. }) => "ponw.report_liveness",
            Call::Ponw(PonwCall::BondMore { .. }) => "ponw.bond_more",
            Call::Ponw(PonwCall::ClaimCapacity { .. }) => "ponw.claim_capacity",
            Call::Ponw(PonwCall::OpenCapacity { .. }) => "ponw.open_capacity",
            Call::Ponw(PonwCall::CapacityVerdict { .. }) => "ponw.capacity_verdict",
            Call::Staking(StakingCall::Bond { .. }) => "staking.bond",
            Call::Staking(StakingCall::Unbond { .. }) => "staking.unbond",
            Call::Staking(StakingCall::WithdrawUnbonded) => "staking.withdraw_unbonded",
            Call::Staking(StakingCall::ReportEquivocation { .. }) => "staking.report_equivocation",
            Call::Training(TrainingCall::SubmitGradientReceipt { .. }) => {
                "training.submit_gradient_receipt"
            }
            Call::Training(TrainingCall::ReportRoundResult { .. }) => {
                "training.report_round_result"
            }
            Call::Training(TrainingCall::SubmitRoundVerification { .. }) => {
                "training.submit_round_verification"
            }
        }
    }
}
