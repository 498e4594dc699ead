//! Audits of capacity claims (issue 24, finding 2; the claims are in `capacity`).
//!
//! Two blocks after a claim's inclusion, that block's randomness decides whether it is
//! audited (`audit_permill`); an unaudited claim is credited then. An audited one names
//! the job indices to open (at least two, distinct) and an auditor drawn by staking
//! bond among the validators other than the worker. The worker must post the drawn
//! leaves with their Merkle paths ([`open_capacity`]) within `open_blocks`: the chain
//! checks them against its signed root. A claim left unopened is void and leaves the
//! worker owing the capacity slash (`owed`: paid from its later income, from its bond
//! only when it leaves), so a worker that crashed between claim and opening never loses
//! bond while it serves, and one that never opens pays in income what it claims.
//! The auditor re-runs the opened jobs and posts its recomputed commitments
//! ([`capacity_verdict`]); the chain, not the auditor, decides whether they match. A
//! match from the first auditor credits the claim; a mismatch never decides alone: the
//! audit goes to another drawn validator, and a third when they differ; the claim is
//! refuted (void, slash) only when two mismatching recomputations agree with each
//! other, otherwise credited. An auditor missing its deadline is replaced; an audit is
//! never credited by default. Once the outcome is decided, every auditor whose verdict
//! it contradicts is slashed as a spot checker would be (`WrongVerdict`).

use crate::capacity::{
    capacity_params, leaf_hash, CapacityError, CapacityResult, PendingClaim, CLAIMS, CLAIMS_TO_DRAW,
};
use crate::evidence::recomputations_agree;
use crate::rewards;
use crate::spot_checks::{pick_by_bond, slash_bond, slash_wrong_verdicts};
use neuroshard_primitives::commitment::ActivationCommitment;
use neuroshard_primitives::{
    blake2_256, merkle, AccountId, Balance, BlockNumber, Event, Hash, SlashReason,
};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// Rounds of auditors at most (the quorum of spot checks: a third decides).
pub const MAX_ROUNDS: usize = 3;
/// Most bytes of one opened or recomputed commitment (a 128-position commitment is
/// under 3 KiB).
pub const MAX_LEAF_BYTES: usize = 8 * 1024;
/// Most siblings in one Merkle path (trees of up to 2^32 leaves).
pub const MAX_PATH: usize = 32;

/// One auditor's recomputation of the opened jobs, and whether the chain found it
/// matching the worker's leaves.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct AuditVerdict {
    pub auditor: AccountId,
    pub recomputed: Vec<Vec<u8>>,
    pub matched: bool,
}

/// An audit in progress.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Audit {
    /// The job indices the worker must open.
    pub indices: Vec<u32>,
    /// The opened commitments (encoded), in the order of `indices`, once posted.
    pub opened: Option<Vec<Vec<u8>>>,
    /// The randomness the audit's draws use.
    pub seed: Hash,
    /// Every auditor drawn so far (the current one last), including those who missed.
    pub drawn: Vec<AccountId>,
    pub verdicts: Vec<AuditVerdict>,
    /// The block by which the current step (opening, then each verdict) is due.
    pub deadline: BlockNumber,
}

pub const AUDITS: StorageMap<Hash, Audit> = StorageMap::new("Ponw", "CapacityAudits");
/// Audit ids whose current step is due at a block.
pub const AUDIT_DEADLINES: StorageMap<BlockNumber, Vec<Hash>> =
    StorageMap::new("Ponw", "CapacityAuditDeadlines");

/// True when the claim `id` is audited under `randomness`.
pub fn is_audited(randomness: &Hash, id: &Hash, permill: u32) -> bool {
    let d = blake2_256(&(b"neuroshard/capacity/audit", randomness, id).encode());
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000 < permill
}

/// The job indices an audit opens: `max(2, sample_permill x jobs)` distinct indices
/// (all of them for a claim of fewer jobs), drawn from `seed`.
pub fn sample_indices(seed: &Hash, id: &Hash, jobs: u32, sample_permill: u32) -> Vec<u32> {
    let wanted = (u64::from(jobs) * u64::from(sample_permill) / 1_000_000).max(2);
    let wanted = wanted.min(u64::from(jobs)) as usize;
    let mut indices = Vec::with_capacity(wanted);
    let mut counter = 0u32;
    while indices.len() < wanted {
        let d = blake2_256(&(b"neuroshard/capacity/sample", seed, id, counter).encode());
        let index = (u64::from_le_bytes(d.as_bytes()[..8].try_into().unwrap_or([0; 8]))
            % u64::from(jobs)) as u32;
        if !indices.contains(&index) {
            indices.push(index);
        }
        counter += 1;
    }
    indices
}

/// The auditor of round `round` (counting replacements) of claim `id`, drawn by bond
/// from `validators` other than the worker and `excluded`; failing that, other than
/// `excluded`; then anyone (a set too small to exclude).
pub fn draw_auditor(
    validators: &[(AccountId, Balance)],
    seed: &Hash,
    id: &Hash,
    round: usize,
    worker: &AccountId,
    excluded: &[AccountId],
) -> Option<AccountId> {
    let tiers: [&dyn Fn(&AccountId) -> bool; 3] = [
        &|v| v != worker && !excluded.contains(v),
        &|v| !excluded.contains(v),
        &|_| true,
    ];
    let digest = blake2_256(&(b"neuroshard/capacity/auditor", seed, id, round as u32).encode());
    pick_by_bond(validators, &tiers, &digest)
}

/// Start-of-block work: draws (or credits) the claims included `DRAW_DELAY` blocks ago
/// and acts on the audits whose step is due.
pub fn on_initialize(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    validators: &[(AccountId, Balance)],
) -> CapacityResult<()> {
    let p = capacity_params(overlay)?;
    for id in CLAIMS_TO_DRAW
        .get(overlay, &ctx.number)?
        .unwrap_or_default()
    {
        let Some(claim) = CLAIMS.get(overlay, &id)? else {
            continue;
        };
        if !is_audited(&ctx.randomness, &id, p.audit_permill) {
            credit(overlay, ctx, &id, &claim)?;
            continue;
        }
        let auditor = draw_auditor(validators, &ctx.randomness, &id, 0, &claim.worker, &[])
            .ok_or(CapacityError::NoValidators)?;
        let audit = Audit {
            indices: sample_indices(&ctx.randomness, &id, claim.jobs, p.sample_permill),
            opened: None,
            seed: ctx.randomness,
            drawn: vec![auditor],
            verdicts: Vec::new(),
            deadline: ctx.number.saturating_add(p.open_blocks.max(1)),
        };
        schedule(overlay, &id, &audit)?;
    }
    CLAIMS_TO_DRAW.remove(overlay, &ctx.number);
    for id in AUDIT_DEADLINES
        .get(overlay, &ctx.number)?
        .unwrap_or_default()
    {
        let (Some(mut audit), Some(claim)) = (AUDITS.get(overlay, &id)?, CLAIMS.get(overlay, &id)?)
        else {
            continue;
        };
        if audit.deadline != ctx.number {
            continue;
        }
        if audit.opened.is_none() {
            void_unopened(overlay, &id, &claim)?;
            continue;
        }
        let round = audit.drawn.len();
        let next = draw_auditor(
            validators,
            &audit.seed,
            &id,
            round,
            &claim.worker,
            &audit.drawn,
        )
        .ok_or(CapacityError::NoValidators)?;
        audit.drawn.push(next);
        audit.deadline = ctx.number.saturating_add(p.audit_blocks.max(1));
        schedule(overlay, &id, &audit)?;
    }
    AUDIT_DEADLINES.remove(overlay, &ctx.number);
    Ok(())
}

/// Stores `audit` and files it under its deadline.
fn schedule(overlay: &mut Overlay<'_>, id: &Hash, audit: &Audit) -> CapacityResult<()> {
    AUDITS.insert(overlay, id, audit);
    let mut due = AUDIT_DEADLINES
        .get(overlay, &audit.deadline)?
        .unwrap_or_default();
    due.push(*id);
    AUDIT_DEADLINES.insert(overlay, &audit.deadline, &due);
    Ok(())
}

/// Credits a claim that stood: its share of an uptime minute.
fn credit(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    id: &Hash,
    claim: &PendingClaim,
) -> CapacityResult<()> {
    rewards::credit(overlay, &claim.worker, |t| {
        t.uptime_minutes += 1;
        t.uptime_credit += u64::from(claim.credit_permill);
    })?;
    overlay.deposit_event(Event::UptimeCredited {
        worker: claim.worker.clone(),
        epoch: ctx.epoch,
        minute: claim.minute,
        credit_permill: claim.credit_permill,
    });
    close(overlay, id, &claim.worker)
}

/// Voids an audited claim left unopened: its worker owes `slash` (`owed`).
fn void_unopened(overlay: &mut Overlay<'_>, id: &Hash, claim: &PendingClaim) -> CapacityResult<()> {
    let slash = capacity_params(overlay)?.slash;
    crate::owed::owe(overlay, &claim.worker, slash)?;
    close(overlay, id, &claim.worker)
}

/// Voids a refuted claim (its signed commitments proven wrong) and slashes its worker
/// `slash`.
fn refute(overlay: &mut Overlay<'_>, id: &Hash, claim: &PendingClaim) -> CapacityResult<()> {
    let slash = capacity_params(overlay)?.slash;
    let reason = SlashReason::FalseCapacityClaim {
        minute: claim.minute,
    };
    slash_bond(overlay, &claim.worker, slash, reason)?;
    close(overlay, id, &claim.worker)
}

/// Forgets a decided claim; a deregistered worker's bond is released once nothing of it
/// is undecided.
fn close(overlay: &mut Overlay<'_>, id: &Hash, worker: &AccountId) -> CapacityResult<()> {
    CLAIMS.remove(overlay, id);
    AUDITS.remove(overlay, id);
    crate::capacity::count_pending(overlay, worker, false)?;
    crate::workers::release_retired_bond(overlay, worker)?;
    Ok(())
}

/// The audit of `who`'s claim for `minute`, with the claim.
fn audit_of(
    state: &impl ReadState,
    who: &AccountId,
    minute: u64,
) -> CapacityResult<(Hash, PendingClaim, Audit)> {
    let id = crate::capacity::claim_id(who, minute);
    match (CLAIMS.get(state, &id)?, AUDITS.get(state, &id)?) {
        (Some(claim), Some(audit)) => Ok((id, claim, audit)),
        _ => Err(CapacityError::NoAudit),
    }
}

/// `open_capacity`: worker `who` opens the drawn jobs of its audited claim for
/// `minute`: one `(commitment, Merkle path)` per drawn index, in the audit's order,
/// each proving its leaf against the claim's root.
pub fn open_capacity(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    minute: u64,
    leaves: &[(Vec<u8>, Vec<Option<Hash>>)],
) -> CapacityResult<()> {
    let (id, claim, mut audit) = audit_of(overlay, who, minute)?;
    if audit.opened.is_some() {
        return Err(CapacityError::NoAudit);
    }
    if leaves.len() != audit.indices.len() {
        return Err(CapacityError::BadOpening);
    }
    for ((bytes, path), index) in leaves.iter().zip(&audit.indices) {
        let proven = bytes.len() <= MAX_LEAF_BYTES
            && path.len() <= MAX_PATH
            && merkle::verify(
                &claim.root,
                leaf_hash(bytes),
                u64::from(*index),
                u64::from(claim.jobs),
                path,
            );
        if !proven {
            return Err(CapacityError::BadOpening);
        }
    }
    audit.opened = Some(leaves.iter().map(|(bytes, _)| bytes.clone()).collect());
    audit.deadline = ctx
        .number
        .saturating_add(capacity_params(overlay)?.audit_blocks.max(1));
    schedule(overlay, &id, &audit)
}

/// `capacity_verdict`: the current auditor of `worker`'s claim for `minute` posts its
/// recomputed commitment of each opened job. The chain decides whether they match the
/// worker's (an opened leaf that is not a commitment of the job's positions matches
/// nothing), then settles or passes the audit on (module docs).
pub fn capacity_verdict(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    validators: &[(AccountId, Balance)],
    worker: &AccountId,
    minute: u64,
    recomputed: Vec<Vec<u8>>,
) -> CapacityResult<()> {
    let (id, claim, mut audit) = audit_of(overlay, worker, minute)?;
    let opened = audit.opened.clone().ok_or(CapacityError::NoAudit)?;
    if audit.drawn.last() != Some(who) {
        return Err(CapacityError::NotTheAuditor);
    }
    let p = capacity_params(overlay)?;
    let mine: Option<Vec<ActivationCommitment>> = recomputed
        .iter()
        .map(|r| {
            (r.len() <= MAX_LEAF_BYTES)
                .then(|| ActivationCommitment::decode(r))
                .flatten()
                .filter(|c| c.position_end.saturating_sub(c.position_start) == p.positions)
        })
        .collect();
    let mine = mine
        .filter(|m| m.len() == opened.len())
        .ok_or(CapacityError::BadVerdict)?;
    let matched = mine.iter().zip(&opened).all(|(r, o)| {
        ActivationCommitment::decode(o).is_some_and(|o| {
            o.position_start == r.position_start
                && o.position_end == r.position_end
                && r.matches(&o)
        })
    });
    audit.verdicts.push(AuditVerdict {
        auditor: who.clone(),
        recomputed,
        matched,
    });
    match outcome(&audit.verdicts) {
        Some(stands) => {
            let wrong = audit
                .verdicts
                .iter()
                .filter(|v| v.matched != stands)
                .map(|v| &v.auditor);
            slash_wrong_verdicts(overlay, &id, wrong)?;
            if stands {
                credit(overlay, ctx, &id, &claim)
            } else {
                refute(overlay, &id, &claim)
            }
        }
        None => {
            let round = audit.drawn.len();
            let next = draw_auditor(validators, &audit.seed, &id, round, worker, &audit.drawn)
                .ok_or(CapacityError::NoValidators)?;
            audit.drawn.push(next);
            audit.deadline = ctx.number.saturating_add(p.audit_blocks.max(1));
            schedule(overlay, &id, &audit)
        }
    }
}

/// The audit's outcome so far: `Some(true)` (the claim stands) when the first verdict
/// matches or no two mismatching recomputations agree after [`MAX_ROUNDS`] verdicts,
/// `Some(false)` (refuted) when two mismatching recomputations agree, `None` while
/// another auditor must be asked.
pub fn outcome(verdicts: &[AuditVerdict]) -> Option<bool> {
    if verdicts.first().is_some_and(|v| v.matched) {
        return Some(true);
    }
    let mismatches: Vec<&AuditVerdict> = verdicts.iter().filter(|v| !v.matched).collect();
    let agree = |a: &AuditVerdict, b: &AuditVerdict| {
        a.recomputed.len() == b.recomputed.len()
            && a.recomputed
                .iter()
                .zip(&b.recomputed)
                .all(|(x, y)| recomputations_agree(x, y))
    };
    let confirmed = mismatches
        .iter()
        .enumerate()
        .any(|(i, a)| mismatches[i + 1..].iter().any(|b| agree(a, b)));
    if confirmed {
        Some(false)
    } else if verdicts.len() >= MAX_ROUNDS {
        Some(true)
    } else {
        None
    }
}
