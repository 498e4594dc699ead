//! Spot checks: who re-runs a sampled receipt, how their verdicts decide it, and what a
//! decision costs whom. A receipt is sampled at its draw (`crate::settlement`) with
//! probability `spot_check_permill / 1e6`; its earnings stay held until the check is
//! decided.
//!
//! **Checkers.** Each check is assigned to one validator at a time, drawn on chain from
//! the draw block's randomness and the receipt id with chances proportional to staking
//! bond, other than the worker and the client where the set allows. Only the assigned validator's verdict is accepted. One that
//! does not answer by the deadline (`spot_check_blocks`) is replaced by another drawn
//! validator: an unanswered check is never credited.
//!
//! **Evidence.** A verdict carries evidence the chain checks first ([`crate::evidence`]):
//! a `Mismatch` the worker's signed statement of the material it handed over and the
//! checker's recomputed commitment, which must fail against the worker's committed one.
//! Evidence that does not check out is rejected (the call fails, nothing changes). A
//! verdict its own evidence refutes (a `Mismatch` whose recomputation matches, a `Match`
//! whose does not) is not taken: its checker loses `spot_check_slash` of its staking bond
//! (`refuted_verdict`) and the check goes to another drawn checker. A worker whose own
//! statement contradicts its receipt is convicted at once.
//!
//! **Quorum.** A `Match` from the first checker decides. A failing verdict (`Mismatch`,
//! `NoAnswer`) never decides alone: the check is reassigned to an independently drawn
//! validator, and a third decides when the two differ; the outcome is the verdict two of
//! them agree on (`Match` when all three differ), where two `Mismatch` verdicts agree
//! only when their recomputed commitments match each other within the tolerance. A
//! validator whose `Mismatch` the majority contradicts (framing an honest worker), or
//! whose `Match` it contradicts (passing fraud), loses `spot_check_slash` of its staking
//! bond.
//!
//! **Outcomes.**
//! - `Match`: the receipt settles like any other.
//! - `NoAnswer` (the worker did not hand over its material: offline, restarted, or
//!   hiding bad work): every receipt the worker holds is forfeited (fees back to the
//!   clients), and it owes the rest of what a `Mismatch` would have slashed, paid by
//!   its next settling receipts ([`crate::owed`]); its bond is untouched while it
//!   serves and it stays registered: an honest fault costs income, and hiding costs
//!   as much as being caught.
//! - `Mismatch` (the material does not attest the work): everything held is forfeited,
//!   [`crate::settlement::slash_for`] the receipt's fee is slashed from the bond and
//!   burned, and the conviction is recorded (its node will not re-register by itself).
//!   A worker whose bond falls below `worker_bond` is deregistered; the rest of its bond
//!   stays reserved, and slashable, until its last check is decided.

use crate::evidence::{self, recomputations_agree, Finding};
use crate::settlement::{self, slash_for};
use crate::{owed, params, workers, Error, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{
    blake2_256, slot_lottery, AccountId, Balance, BlockNumber, Event, EvidenceSummary, Hash,
    ReceiptBody, SlashReason, SpotCheckEvidence, SpotCheckVerdict,
};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// A sampled receipt awaiting its verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct PendingCheck {
    /// The receipt (what the checker re-runs; its id is the map key).
    pub body: ReceiptBody,
    /// What the client paid for it.
    pub fee: Balance,
    /// The validator whose verdict is awaited, and the block by which.
    pub checker: AccountId,
    pub deadline: BlockNumber,
    /// Verdicts so far, in order.
    pub verdicts: Vec<(AccountId, SpotCheckVerdict)>,
    /// The recomputation each `Mismatch` verdict so far carried.
    pub recomputed: Vec<Recomputed>,
    /// Checkers that were assigned and did not answer in time.
    pub missed: Vec<AccountId>,
    /// Randomness of the draw (checkers are drawn from it).
    pub seed: Hash,
}

/// A `Mismatch` verdict's recomputed commitment.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Recomputed {
    pub checker: AccountId,
    /// The encoded commitment.
    pub commitment: Vec<u8>,
    /// Its largest position distance from the worker's committed one, in millionths.
    pub distance_ppm: u32,
}

impl PendingCheck {
    /// How many checkers were assigned before the current one (a node answers each
    /// assignment once).
    pub fn round(&self) -> usize {
        self.verdicts.len() + self.missed.len()
    }
}

pub const PENDING_CHECKS: StorageMap<Hash, PendingCheck> = StorageMap::new("Ponw", "PendingChecks");
/// The ids of each worker's pending checks, so that one worker's checks are found
/// without reading every check (bounded by the receipts its bond answers for).
pub const PENDING_BY_WORKER: StorageMap<AccountId, Vec<Hash>> =
    StorageMap::new("Ponw", "PendingByWorker");
/// Receipt ids whose current checker's deadline is at a block.
pub const CHECK_DEADLINES: StorageMap<BlockNumber, Vec<Hash>> =
    StorageMap::new("Ponw", "CheckDeadlines");
/// Total slashed from each worker's bond, ever.
pub const SLASHED: StorageMap<AccountId, Balance> = StorageMap::new("Ponw", "Slashed");
/// The block of each worker's last `Mismatch` outcome: proven wrong work. A serving node
/// re-registers by itself after any other deregistration, but not after this one (its
/// operator must look first).
pub const CONVICTED: StorageMap<AccountId, BlockNumber> = StorageMap::new("Ponw", "Convicted");

/// True when the receipt `id` is drawn for a spot check by `randomness`.
pub fn is_sampled(randomness: &Hash, id: &Hash, permill: u32) -> bool {
    let draw = blake2_256(&(b"neuroshard/spot-check", randomness, id).encode());
    u32::from_le_bytes([draw[0], draw[1], draw[2], draw[3]]) % 1_000_000 < permill
}

/// The checker of round `round` of the check of `body` (id `id`), drawn with `seed` from
/// `validators` (each with its staking bond) with chances proportional to bond: among
/// those other than the worker, the client and `excluded` (the round's earlier
/// checkers); failing that, other than the worker and `excluded`; then other than
/// `excluded`; then anyone (a set too small to exclude).
pub fn draw_checker(
    validators: &[(AccountId, Balance)],
    seed: &Hash,
    id: &Hash,
    round: usize,
    body: &ReceiptBody,
    excluded: &[AccountId],
) -> Option<AccountId> {
    let tiers: [&dyn Fn(&AccountId) -> bool; 4] = [
        &|v| *v != body.worker && *v != body.client && !excluded.contains(v),
        &|v| *v != body.worker && !excluded.contains(v),
        &|v| !excluded.contains(v),
        &|_| true,
    ];
    let digest = blake2_256(&(b"neuroshard/spot-check/checker", seed, id, round as u32).encode());
    pick_by_bond(validators, &tiers, &digest)
}

/// Draws with `digest` one of `validators`, with chances proportional to staking bond,
/// from the first tier (a filter) that keeps any.
pub fn pick_by_bond(
    validators: &[(AccountId, Balance)],
    tiers: &[&dyn Fn(&AccountId) -> bool],
    digest: &Hash,
) -> Option<AccountId> {
    let pool = tiers.iter().find_map(|keep| {
        let pool: Vec<&(AccountId, Balance)> = validators.iter().filter(|(v, _)| keep(v)).collect();
        (!pool.is_empty()).then_some(pool)
    })?;
    let bonds: Vec<Balance> = pool.iter().map(|(_, bond)| *bond).collect();
    let index = slot_lottery::pick_weighted(digest, &bonds)?;
    Some(pool[index].0.clone())
}

/// Opens the check of a sampled receipt at its draw block.
pub(crate) fn open(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    validators: &[(AccountId, Balance)],
    id: Hash,
    body: &ReceiptBody,
    fee: Balance,
) -> Result<()> {
    let p = params(overlay)?;
    let Some(checker) = draw_checker(validators, &ctx.randomness, &id, 0, body, &[]) else {
        return Err(Error::NoValidators);
    };
    let check = PendingCheck {
        body: body.clone(),
        fee,
        checker: checker.clone(),
        deadline: ctx.number.saturating_add(p.spot_check_blocks.max(1)),
        verdicts: Vec::new(),
        recomputed: Vec::new(),
        missed: Vec::new(),
        seed: ctx.randomness,
    };
    schedule(overlay, &id, &check)?;
    overlay.deposit_event(Event::SpotCheckRequested {
        id,
        worker: body.worker.clone(),
        layers: body.layers,
        checker,
        deadline: check.deadline,
    });
    Ok(())
}

/// Stores `check` and files it under its deadline.
fn schedule(overlay: &mut Overlay<'_>, id: &Hash, check: &PendingCheck) -> Result<()> {
    PENDING_CHECKS.insert(overlay, id, check);
    let worker = &check.body.worker;
    let mut ids = PENDING_BY_WORKER.get(overlay, worker)?.unwrap_or_default();
    if !ids.contains(id) {
        ids.push(*id);
        PENDING_BY_WORKER.insert(overlay, worker, &ids);
    }
    let mut due = CHECK_DEADLINES
        .get(overlay, &check.deadline)?
        .unwrap_or_default();
    due.push(*id);
    CHECK_DEADLINES.insert(overlay, &check.deadline, &due);
    Ok(())
}

/// Takes the check of `id` out of storage and its deadline list.
fn take(overlay: &mut Overlay<'_>, id: &Hash) -> Result<PendingCheck> {
    let check = PENDING_CHECKS
        .get(overlay, id)?
        .ok_or(Error::NoPendingCheck(*id))?;
    PENDING_CHECKS.remove(overlay, id);
    let worker = &check.body.worker;
    let mut ids = PENDING_BY_WORKER.get(overlay, worker)?.unwrap_or_default();
    ids.retain(|i| i != id);
    if ids.is_empty() {
        PENDING_BY_WORKER.remove(overlay, worker);
    } else {
        PENDING_BY_WORKER.insert(overlay, worker, &ids);
    }
    let mut due = CHECK_DEADLINES
        .get(overlay, &check.deadline)?
        .unwrap_or_default();
    due.retain(|d| d != id);
    if due.is_empty() {
        CHECK_DEADLINES.remove(overlay, &check.deadline);
    } else {
        CHECK_DEADLINES.insert(overlay, &check.deadline, &due);
    }
    Ok(check)
}

/// Hands `check` to the next drawn checker with a fresh deadline.
fn reassign(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    validators: &[(AccountId, Balance)],
    id: Hash,
    mut check: PendingCheck,
    verdict: Option<SpotCheckVerdict>,
) -> Result<()> {
    let p = params(overlay)?;
    let mut excluded: Vec<AccountId> = check.verdicts.iter().map(|(v, _)| v.clone()).collect();
    excluded.extend(check.missed.iter().cloned());
    let round = check.round();
    check.checker = draw_checker(validators, &check.seed, &id, round, &check.body, &excluded)
        .ok_or(Error::NoValidators)?;
    check.deadline = now.saturating_add(p.spot_check_blocks.max(1));
    schedule(overlay, &id, &check)?;
    overlay.deposit_event(Event::SpotCheckReassigned {
        id,
        checker: check.checker,
        deadline: check.deadline,
        verdict,
    });
    Ok(())
}

/// The outcome of `verdicts`, once they decide one (verdicts agree when equal).
pub fn outcome(verdicts: &[SpotCheckVerdict]) -> Option<SpotCheckVerdict> {
    outcome_by(verdicts, |a, b| a == b, |v| *v)
}

/// The outcome of `votes`, once they decide one: a first `Match` decides; otherwise the
/// verdict of two votes that `agree`, and `Match` when no two of three do.
pub fn outcome_by<T>(
    votes: &[T],
    agree: impl Fn(&T, &T) -> bool,
    verdict: impl Fn(&T) -> SpotCheckVerdict,
) -> Option<SpotCheckVerdict> {
    use SpotCheckVerdict::Match;
    match votes {
        [a] if verdict(a) == Match => Some(Match),
        [a, b] if agree(a, b) => Some(verdict(a)),
        [a, b, c] => Some(if agree(a, b) || agree(a, c) {
            verdict(a)
        } else if agree(b, c) {
            verdict(b)
        } else {
            Match
        }),
        _ => None,
    }
}

/// The outcome of `check`'s verdicts: two `Mismatch` verdicts agree only when their
/// recomputed commitments do.
fn check_outcome(check: &PendingCheck) -> Option<SpotCheckVerdict> {
    let recomputed_by = |who: &AccountId| {
        check
            .recomputed
            .iter()
            .find(|r| r.checker == *who)
            .map(|r| r.commitment.as_slice())
    };
    let agree = |a: &(AccountId, SpotCheckVerdict), b: &(AccountId, SpotCheckVerdict)| {
        a.1 == b.1
            && (a.1 != SpotCheckVerdict::Mismatch
                || matches!((recomputed_by(&a.0), recomputed_by(&b.0)),
                    (Some(x), Some(y)) if recomputations_agree(x, y)))
    };
    outcome_by(&check.verdicts, agree, |v| v.1)
}

/// `submit_spot_check`: the assigned checker's verdict on a pending check, with its
/// `evidence` (`validators`: the current set, to draw the next checker from). Evidence
/// that does not check out fails the call and changes nothing.
pub fn submit_verdict(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    validators: &[(AccountId, Balance)],
    checker: &AccountId,
    id: &Hash,
    verdict: SpotCheckVerdict,
    evidence: &SpotCheckEvidence,
) -> Result<()> {
    let pending = PENDING_CHECKS
        .get(overlay, id)?
        .ok_or(Error::NoPendingCheck(*id))?;
    if pending.checker != *checker {
        return Err(Error::NotTheChecker);
    }
    let finding = evidence::check(&pending.body, id, verdict, evidence)?;
    let mut check = take(overlay, id)?;
    match finding {
        Finding::Refuted { distance_ppm } => refuted(
            overlay,
            now,
            validators,
            (*id, check),
            verdict,
            distance_ppm,
        ),
        Finding::Convicted => {
            check.verdicts.push((checker.clone(), verdict));
            let summary = match evidence {
                SpotCheckEvidence::Disowned(s) => EvidenceSummary::Statement(s.statement.clone()),
                SpotCheckEvidence::Recomputed(r) => {
                    EvidenceSummary::Statement(r.statement.statement.clone())
                }
                SpotCheckEvidence::None => EvidenceSummary::None,
            };
            decide(
                overlay,
                now,
                *id,
                check,
                SpotCheckVerdict::Mismatch,
                summary,
            )
        }
        Finding::Vote {
            verdict,
            recomputed,
        } => {
            check.verdicts.push((checker.clone(), verdict));
            if let Some((commitment, distance_ppm)) = recomputed {
                check.recomputed.push(Recomputed {
                    checker: checker.clone(),
                    commitment,
                    distance_ppm,
                });
            }
            match check_outcome(&check) {
                None => reassign(overlay, now, validators, *id, check, Some(verdict)),
                Some(result) => {
                    let summary = summary_of(&check, result);
                    decide(overlay, now, *id, check, result, summary)
                }
            }
        }
    }
}

/// A verdict its own evidence refutes: its checker is slashed `spot_check_slash` and
/// counted as having missed the assignment; the check goes to another checker.
fn refuted(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    validators: &[(AccountId, Balance)],
    (id, mut check): (Hash, PendingCheck),
    verdict: SpotCheckVerdict,
    distance_ppm: u32,
) -> Result<()> {
    let checker = check.checker.clone();
    let amount = params(overlay)?.spot_check_slash;
    let slashed = balances::slash_bonded(overlay, &checker, amount)?;
    if slashed > 0 {
        overlay.deposit_event(Event::Slashed {
            who: checker.clone(),
            amount: slashed,
            reason: SlashReason::RefutedVerdict { receipt: id },
        });
    }
    overlay.deposit_event(Event::SpotCheckVerdictRefuted {
        id,
        checker: checker.clone(),
        verdict,
        distance_ppm,
    });
    check.missed.push(checker);
    if check.missed.len() > MISSED_KEPT {
        check.missed.remove(0);
    }
    reassign(overlay, now, validators, id, check, None)
}

/// What a decided check's outcome rested on: for a `Mismatch`, the agreeing checkers'
/// recomputed commitments (hashes) and the first one's distance from the worker's.
fn summary_of(check: &PendingCheck, result: SpotCheckVerdict) -> EvidenceSummary {
    if result != SpotCheckVerdict::Mismatch || check.recomputed.is_empty() {
        return EvidenceSummary::None;
    }
    let recomputed: Vec<Hash> = check
        .recomputed
        .iter()
        .map(|r| blake2_256(&r.commitment))
        .collect();
    EvidenceSummary::Recomputed {
        recomputed,
        distance_ppm: check.recomputed[0].distance_ppm,
    }
}

/// Applies the outcome of a decided check.
fn decide(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    id: Hash,
    check: PendingCheck,
    result: SpotCheckVerdict,
    evidence: EvidenceSummary,
) -> Result<()> {
    punish_contradicted(overlay, &id, &check.verdicts, result)?;
    let worker = check.body.worker.clone();
    let last = check.checker.clone();
    match result {
        SpotCheckVerdict::Match => {
            settlement::check_passed(overlay, now, &id)?;
            overlay.deposit_event(Event::SpotCheckPassed {
                id,
                worker: worker.clone(),
                checker: last,
            });
        }
        SpotCheckVerdict::NoAnswer | SpotCheckVerdict::Mismatch => {
            let refunded = settlement::forfeit_all(overlay, &worker)?;
            let slashed = if result == SpotCheckVerdict::Mismatch {
                CONVICTED.insert(overlay, &worker, &now);
                slash_worker(overlay, &id, &worker, check.fee)?
            } else {
                owed::incur(overlay, &worker, check.fee, refunded)?;
                0
            };
            overlay.deposit_event(Event::SpotCheckFailed {
                id,
                worker: worker.clone(),
                checker: last,
                verdict: result,
                slashed,
                refunded,
                evidence,
            });
        }
    }
    workers::release_retired_bond(overlay, &worker)
}

/// Slashes the validators whose verdict the outcome contradicts on fraud: a `Mismatch`
/// against a `Match` outcome, a `Match` against a `Mismatch` one (`NoAnswer` can be an
/// honest network failure on either side and is never punished).
fn punish_contradicted(
    overlay: &mut Overlay<'_>,
    id: &Hash,
    verdicts: &[(AccountId, SpotCheckVerdict)],
    result: SpotCheckVerdict,
) -> Result<()> {
    use SpotCheckVerdict::{Match, Mismatch};
    let wrong = verdicts.iter().filter_map(|(validator, verdict)| {
        matches!((verdict, result), (Mismatch, Match) | (Match, Mismatch)).then_some(validator)
    });
    slash_wrong_verdicts(overlay, id, wrong)
}

/// Slashes `spot_check_slash` from the staking bond of each validator whose verdict on
/// `id` (a receipt or a capacity claim) the decided outcome contradicts
/// (`SlashReason::WrongVerdict`).
pub(crate) fn slash_wrong_verdicts<'a>(
    overlay: &mut Overlay<'_>,
    id: &Hash,
    wrong: impl Iterator<Item = &'a AccountId>,
) -> Result<()> {
    let amount = params(overlay)?.spot_check_slash;
    for validator in wrong {
        let slashed = balances::slash_bonded(overlay, validator, amount)?;
        if slashed > 0 {
            overlay.deposit_event(Event::Slashed {
                who: validator.clone(),
                amount: slashed,
                reason: SlashReason::WrongVerdict { receipt: *id },
            });
        }
    }
    Ok(())
}

/// Slashes a convicted worker for the receipt `receipt` paying `fee`: [`slash_for`] it,
/// from its bond (registered or retired), all burned. Deregisters it when the bond falls
/// below the minimum. Returns the amount slashed.
fn slash_worker(
    overlay: &mut Overlay<'_>,
    receipt: &Hash,
    worker: &AccountId,
    fee: Balance,
) -> Result<Balance> {
    let p = params(overlay)?;
    let reason = SlashReason::FailedSpotCheck { receipt: *receipt };
    slash_bond(overlay, worker, slash_for(&p, fee), reason)
}

/// Burns up to `amount` of `worker`'s bond for `reason` (recorded in its slashed total,
/// `Slashed` event); returns what was taken (a bond falling below `worker_bond`
/// deregisters the worker, see `workers::take_bond`).
pub fn slash_bond(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    amount: Balance,
    reason: SlashReason,
) -> Result<Balance> {
    let amount = workers::take_bond(overlay, worker, amount)?;
    if amount > 0 {
        balances::pay_from_reserved(overlay, worker, worker, amount, amount)?;
        let total = slashed(overlay, worker)?.saturating_add(amount);
        SLASHED.insert(overlay, worker, &total);
        overlay.deposit_event(Event::Slashed {
            who: worker.clone(),
            amount,
            reason,
        });
    }
    Ok(amount)
}

pub fn pending(state: &impl ReadState, id: &Hash) -> Result<Option<PendingCheck>> {
    Ok(PENDING_CHECKS.get(state, id)?)
}

/// The pending checks of `worker`'s receipts.
pub fn pending_of(state: &impl ReadState, worker: &AccountId) -> Result<Vec<(Hash, PendingCheck)>> {
    let mut checks = Vec::new();
    for id in PENDING_BY_WORKER.get(state, worker)?.unwrap_or_default() {
        if let Some(check) = PENDING_CHECKS.get(state, &id)? {
            checks.push((id, check));
        }
    }
    Ok(checks)
}

/// Every pending check (for the node's spot checker and RPC).
pub fn all_pending(state: &impl ReadState) -> Result<Vec<(Hash, PendingCheck)>> {
    Ok(PENDING_CHECKS.entries(state)?)
}

pub fn slashed(state: &impl ReadState, who: &AccountId) -> Result<Balance> {
    Ok(SLASHED.get(state, who)?.unwrap_or(0))
}

/// The block of `who`'s last `Mismatch` outcome, if any.
pub fn convicted(state: &impl ReadState, who: &AccountId) -> Result<Option<BlockNumber>> {
    Ok(CONVICTED.get(state, who)?)
}

/// Most missed assignments a check remembers (older ones may be drawn again).
const MISSED_KEPT: usize = 16;

/// Start of block: checks whose checker let the deadline pass go to another checker.
pub(crate) fn reassign_overdue(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    validators: &[(AccountId, Balance)],
) -> Result<()> {
    let Some(due) = CHECK_DEADLINES.get(overlay, &ctx.number)? else {
        return Ok(());
    };
    for id in due {
        let Ok(mut check) = take(overlay, &id) else {
            continue;
        };
        check.missed.push(check.checker.clone());
        if check.missed.len() > MISSED_KEPT {
            check.missed.remove(0);
        }
        reassign(overlay, ctx.number, validators, id, check, None)?;
    }
    Ok(())
}

/// True when `who` has receipts awaiting a check.
pub(crate) fn has_pending(state: &impl ReadState, who: &AccountId) -> Result<bool> {
    Ok(PENDING_BY_WORKER.get(state, who)?.is_some())
}
