//! Capacity claims on chain time (issue 24, finding 2): the rules that are to replace the
//! prober's word on a worker's throughput (`liveness::report_liveness`), which a
//! colluding validator can fake for free.
//!
//! - **Beacon.** The beacon of minute `m` is the chain randomness (the parent's mixed
//!   with the author's VRF output) of the first block of `m` at or after the minute's
//!   instant slot ([`instant_slot`]); nobody knows it before that block exists.
//! - **Claim.** A worker runs capacity jobs whose inputs derive from the beacon and its
//!   account ([`job_input_seed`]) and claims, signed, `{minute, jobs, root}`
//!   ([`claim_capacity`]): accepted only in a block after the beacon's and at most
//!   `window_slots` slots after it, once per minute. Every account's window is the same
//!   chain-time interval, so K accounts of one machine share its work: credit
//!   `min(1, work / (reference x window))` ([`credit_permill`]) is subadditive, with no
//!   prober's clock.
//! - **Audit.** Two blocks after inclusion the claim is drawn for audit (or credited),
//!   from randomness nobody knew when its root was fixed (`capacity_audit`).
//!
//! The runtime dispatches the calls (`claim_capacity`, `open_capacity`,
//! `capacity_verdict`) and runs the hook; the node does not use them yet, so
//! `report_liveness` still credits most minutes. Until it is removed a minute is credited
//! once at most: a worker credited by its probe cannot claim that minute, and a probe
//! does not credit a minute its worker claimed (docs/PONW-SECURITY.md, "Capacity claims
//! on chain time").

use crate::liveness::{probe_instant_ms, MINUTE_SEED};
use crate::settlement::DRAW_DELAY;
use crate::workers::{worker, WorkerInfo};
use neuroshard_primitives::{blake2_256, AccountId, Balance, BlockNumber, Hash, LayerRange, UNIT};
use neuroshard_support::{
    BlockContext, Overlay, ReadState, StorageError, StorageMap, StorageValue,
};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The parameters of capacity claims and their audits, chain spec `ponw.capacity`
/// (docs/PONW-SECURITY.md gives the inequalities each default satisfies).
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
#[serde(default)]
pub struct CapacityParams {
    /// Slots after the beacon's within which a claim must be included (W).
    pub window_slots: u64,
    /// Positions of each job's input.
    pub positions: u32,
    /// Most jobs one claim may count.
    pub max_jobs: u32,
    /// Chance, in millionths, that a claim is audited (q).
    pub audit_permill: u32,
    /// Share of a claim's jobs an audit opens, in millionths (at least two jobs, m).
    pub sample_permill: u32,
    /// Blocks after the draw within which the worker must open the drawn jobs.
    pub open_blocks: u64,
    /// Blocks an auditor has for its verdict before another is drawn.
    pub audit_blocks: u64,
    /// Taken from the bond of a worker whose claim is refuted or left unopened (S).
    #[serde(with = "neuroshard_balances::decimal_string")]
    pub slash: Balance,
    /// Layer-positions per second that earn a whole minute (as `probe.reference_throughput`).
    pub reference_throughput: u64,
}

impl Default for CapacityParams {
    fn default() -> Self {
        Self {
            window_slots: 2,
            positions: 32,
            max_jobs: 4_096,
            audit_permill: 250_000,
            sample_permill: 50_000,
            open_blocks: 10,
            audit_blocks: 10,
            slash: 10 * UNIT,
            reference_throughput: 13_000,
        }
    }
}

/// The current minute's beacon, once its block is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Beacon {
    pub minute: u64,
    /// The block whose randomness is the beacon, and its slot.
    pub block: BlockNumber,
    pub slot: u64,
    pub value: Hash,
    /// The window every claim of the minute is credited over (`window_slots` slots).
    pub window_ms: u64,
}

pub const BEACON: StorageValue<Beacon> = StorageValue::new("Ponw", "CapacityBeacon");

/// A worker's signed claim: the jobs it finished from the beacon until its claim's
/// block and the Merkle root of their commitments' leaf hashes ([`leaf_hash`]), in job
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct CapacityClaim {
    pub minute: u64,
    pub jobs: u32,
    pub root: Hash,
}

/// A claim waiting for its draw or its audit.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct PendingClaim {
    pub worker: AccountId,
    pub minute: u64,
    pub jobs: u32,
    pub root: Hash,
    /// The shard the jobs run on and the seed of their inputs.
    pub layers: LayerRange,
    pub input_seed: Hash,
    /// The credit the claim earns if it is not refuted, in millionths of a minute.
    pub credit_permill: u32,
}

/// Pending claims by id ([`claim_id`]).
pub const CLAIMS: StorageMap<Hash, PendingClaim> = StorageMap::new("Ponw", "CapacityClaims");
/// Ids of the claims drawn (or credited) at a block: their inclusion plus `DRAW_DELAY`.
pub const CLAIMS_TO_DRAW: StorageMap<BlockNumber, Vec<Hash>> =
    StorageMap::new("Ponw", "CapacityClaimsToDraw");
/// The last minute each worker claimed.
pub const LAST_CLAIM: StorageMap<AccountId, u64> = StorageMap::new("Ponw", "LastCapacityClaim");
/// How many claims of each worker are not decided yet: while any is, a deregistered
/// worker's bond stays retired (slashable, and paying what an unopened claim leaves it
/// owing).
pub const PENDING_BY_WORKER: StorageMap<AccountId, u32> =
    StorageMap::new("Ponw", "CapacityClaimsPending");

/// True while a claim of `who` is waiting for its draw or audit.
pub fn has_pending(state: &impl ReadState, who: &AccountId) -> CapacityResult<bool> {
    Ok(PENDING_BY_WORKER.get(state, who)?.is_some())
}

/// Counts one more (`add`) or one fewer pending claim of `who`.
pub(crate) fn count_pending(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    add: bool,
) -> CapacityResult<()> {
    let n = PENDING_BY_WORKER.get(overlay, who)?.unwrap_or(0);
    let n = if add {
        n.saturating_add(1)
    } else {
        n.saturating_sub(1)
    };
    if n == 0 {
        PENDING_BY_WORKER.remove(overlay, who);
    } else {
        PENDING_BY_WORKER.insert(overlay, who, &n);
    }
    Ok(())
}

/// Why a capacity call is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CapacityError {
    #[error("no beacon for minute {0} (its block is not in yet, or the minute is over)")]
    NoBeacon(u64),
    #[error("a claim cannot be in the beacon's own block or before it")]
    ClaimBeforeBeacon,
    #[error("the claim's window closed at slot {deadline}")]
    ClaimTooLate { deadline: u64 },
    #[error("a claim counts 1 to {max} jobs, not {jobs}")]
    BadJobCount { jobs: u32, max: u32 },
    #[error("minute {0} was already claimed")]
    AlreadyClaimed(u64),
    #[error("the worker announces no shard to run jobs on")]
    NoShard,
    #[error("no audit of this claim waits for this call")]
    NoAudit,
    #[error("the opening does not prove the drawn leaves against the claim's root")]
    BadOpening,
    #[error("this audit is assigned to another validator")]
    NotTheAuditor,
    #[error("the verdict must carry one well-formed recomputed commitment per opened job")]
    BadVerdict,
    #[error("no validator to assign an audit to")]
    NoValidators,
    #[error(transparent)]
    Pallet(#[from] crate::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type CapacityResult<T> = std::result::Result<T, CapacityError>;

/// The chain's capacity parameters (`Params::capacity`).
pub fn capacity_params(state: &impl ReadState) -> CapacityResult<CapacityParams> {
    Ok(crate::params(state)?.capacity)
}

/// The slot of minute `minute`'s instant (drawn from the minute's seed, as the probe
/// instant is): the beacon is the first block of the minute at or after it.
pub fn instant_slot(minute: u64, seed: &Hash, slot_duration_ms: u64) -> u64 {
    probe_instant_ms(minute, seed) / slot_duration_ms.max(1)
}

/// Records the beacon when `ctx` is the minute's first block at or after its instant
/// slot (after `liveness::record_minute_seed` has seen the block).
pub fn record_beacon(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    slot_duration_ms: u64,
) -> CapacityResult<()> {
    let Some((minute, seed)) = MINUTE_SEED.get(overlay)?.filter(|(m, _)| *m == ctx.minute) else {
        return Ok(());
    };
    if BEACON.get(overlay)?.is_some_and(|b| b.minute == minute)
        || ctx.slot < instant_slot(minute, &seed, slot_duration_ms)
    {
        return Ok(());
    }
    let window_slots = capacity_params(overlay)?.window_slots.max(1);
    prune_last_claims(overlay, minute)?;
    BEACON.put(
        overlay,
        &Beacon {
            minute,
            block: ctx.number,
            slot: ctx.slot,
            value: ctx.randomness,
            window_ms: window_slots.saturating_mul(slot_duration_ms.max(1)),
        },
    );
    Ok(())
}

/// Forgets the last claim of every account no longer registered whose claim is older
/// than `minute` (so `LastCapacityClaim` holds at most the registered workers and those
/// that left this minute; a claim still pending keeps its own record in `CLAIMS`).
fn prune_last_claims(overlay: &mut Overlay<'_>, minute: u64) -> CapacityResult<()> {
    for (who, last) in LAST_CLAIM.entries(overlay)? {
        if last < minute && worker(overlay, &who)?.is_none() {
            LAST_CLAIM.remove(overlay, &who);
        }
    }
    Ok(())
}

/// The seed of `who`'s job inputs under `beacon` (job `j`'s input is
/// `neuroshard_inference::probe_window::job_seed(seed, beacon, j)`): bound to the
/// account, so a relayed job proves nothing for the relayer.
pub fn job_input_seed(beacon: &Hash, who: &AccountId) -> Hash {
    blake2_256(&(b"neuroshard/capacity/input", beacon, who).encode())
}

/// The shard `who`'s jobs run on under `beacon`, drawn among those it announces.
pub fn claim_shard(beacon: &Hash, who: &AccountId, info: &WorkerInfo) -> Option<LayerRange> {
    let n = info.shards.len() as u64;
    (n > 0).then(|| {
        let digest = blake2_256(&(b"neuroshard/capacity/shard", beacon, who).encode());
        let word = u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        info.shards[(word % n) as usize]
    })
}

/// The leaf of a job's encoded commitment in a claim's Merkle tree (domain-tagged, so
/// it cannot pass for an inner node).
pub fn leaf_hash(commitment: &[u8]) -> Hash {
    blake2_256(&(b"neuroshard/capacity/leaf", commitment).encode())
}

/// The id of `who`'s claim for `minute`.
pub fn claim_id(who: &AccountId, minute: u64) -> Hash {
    blake2_256(&(b"neuroshard/capacity/claim", who, minute).encode())
}

/// The credit, in millionths of a minute, of `jobs` jobs on `layers` layers in a window
/// of `window_ms`: `min(1, work / (reference x window))`.
pub fn credit_permill(p: &CapacityParams, jobs: u32, layers: u16, window_ms: u64) -> u32 {
    let work = u128::from(jobs) * u128::from(p.positions) * u128::from(layers);
    let capacity = u128::from(p.reference_throughput.max(1)) * u128::from(window_ms.max(1));
    (work * 1_000 * 1_000_000 / capacity).min(1_000_000) as u32
}

/// `claim_capacity`: registered worker `who` claims the jobs it finished in the
/// current minute's window. Refused before the beacon's block is in, in it, after the
/// window, twice a minute, or with a job count out of bounds.
pub fn claim_capacity(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    claim: &CapacityClaim,
) -> CapacityResult<()> {
    let info = worker(overlay, who)?.ok_or(crate::Error::NotAWorker)?;
    let p = capacity_params(overlay)?;
    let beacon = BEACON
        .get(overlay)?
        .filter(|b| b.minute == claim.minute && b.minute == ctx.minute)
        .ok_or(CapacityError::NoBeacon(claim.minute))?;
    if ctx.number <= beacon.block {
        return Err(CapacityError::ClaimBeforeBeacon);
    }
    let deadline = beacon.slot.saturating_add(p.window_slots);
    if ctx.slot > deadline {
        return Err(CapacityError::ClaimTooLate { deadline });
    }
    if claim.jobs == 0 || claim.jobs > p.max_jobs {
        return Err(CapacityError::BadJobCount {
            jobs: claim.jobs,
            max: p.max_jobs,
        });
    }
    let id = claim_id(who, claim.minute);
    // A probe's credit for the minute (while `report_liveness` lasts) counts as its claim.
    if LAST_CLAIM
        .get(overlay, who)?
        .is_some_and(|m| m >= claim.minute)
        || info.last_credited_minute == Some(claim.minute)
        || CLAIMS.contains(overlay, &id)
    {
        return Err(CapacityError::AlreadyClaimed(claim.minute));
    }
    let layers = claim_shard(&beacon.value, who, &info).ok_or(CapacityError::NoShard)?;
    let pending = PendingClaim {
        worker: who.clone(),
        minute: claim.minute,
        jobs: claim.jobs,
        root: claim.root,
        layers,
        input_seed: job_input_seed(&beacon.value, who),
        credit_permill: credit_permill(&p, claim.jobs, layers.len(), beacon.window_ms),
    };
    LAST_CLAIM.insert(overlay, who, &claim.minute);
    CLAIMS.insert(overlay, &id, &pending);
    count_pending(overlay, who, true)?;
    let draw_at = ctx.number.saturating_add(DRAW_DELAY);
    let mut due = CLAIMS_TO_DRAW.get(overlay, &draw_at)?.unwrap_or_default();
    due.push(id);
    CLAIMS_TO_DRAW.insert(overlay, &draw_at, &due);
    Ok(())
}
