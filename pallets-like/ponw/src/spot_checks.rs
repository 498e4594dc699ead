//! Spot checks and worker bonds. Every worker reserves `worker_bond` when it registers.
//! Each receipt a batch accepts is sampled with probability `spot_check_permill / 1e6`,
//! drawn from the block's randomness (after its author's VRF) and the receipt id: a
//! sampled receipt's fee is paid as usual but its tokens are held back from the tally
//! until a validator re-runs the work (the node's spot checker: the worker's archived
//! inputs through the same layers, commitments compared with tolerance) and submits its
//! verdict:
//! - `Match` credits the held tokens to the current epoch's tally;
//! - `Mismatch` or `NoAnswer` voids the receipt (nothing is ever minted for it) and
//!   slashes up to `spot_check_slash` from the worker's bond: the client gets its fee
//!   back out of the slash and the rest is burned. A worker whose bond falls below
//!   `worker_bond` is deregistered until it registers (and bonds) again.
//!
//! A check no validator answered by its deadline (`spot_check_blocks`) is credited
//! (optimistic: no evidence of bad work). An author knows its own VRF output, so it
//! could leave out a batch whose receipts would be sampled; the batch's client then
//! resubmits it and the next author's randomness draws again, so only a cheater who
//! authors every block escapes the draw.

use crate::{params, rewards, workers, Error, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{
    blake2_256, AccountId, Balance, BlockNumber, Event, Hash, ReceiptBody, SlashReason,
    SpotCheckVerdict,
};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// A sampled receipt awaiting a validator's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PendingCheck {
    /// The receipt (what the checker re-runs; its id is the map key).
    pub body: ReceiptBody,
    /// What the client paid for it (refunded out of the slash if the check fails).
    pub fee: Balance,
    /// Block by which a verdict must come.
    pub deadline: BlockNumber,
}

pub const PENDING_CHECKS: StorageMap<Hash, PendingCheck> = StorageMap::new("Ponw", "PendingChecks");
/// Receipt ids whose checks expire at a block.
pub const CHECK_DEADLINES: StorageMap<BlockNumber, Vec<Hash>> =
    StorageMap::new("Ponw", "CheckDeadlines");
/// Total slashed from each worker's bond, ever.
pub const SLASHED: StorageMap<AccountId, Balance> = StorageMap::new("Ponw", "Slashed");
/// The block of each worker's last `Mismatch` verdict: proven wrong work. A serving node
/// re-registers by itself after any other deregistration, but not after this one (its
/// operator must look first).
pub const CONVICTED: StorageMap<AccountId, BlockNumber> = StorageMap::new("Ponw", "Convicted");

/// True when the receipt `id` is drawn for a spot check in a block with `randomness`.
pub fn is_sampled(randomness: &Hash, id: &Hash, permill: u32) -> bool {
    let draw = blake2_256(&(b"neuroshard/spot-check", randomness, id).encode());
    u32::from_le_bytes([draw[0], draw[1], draw[2], draw[3]]) % 1_000_000 < permill
}

/// Holds an accepted receipt for a check (its tokens are not credited yet).
pub(crate) fn hold(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    body: &ReceiptBody,
    fee: Balance,
    check_blocks: u64,
) -> Result<()> {
    let id = body.id();
    let deadline = ctx.number.saturating_add(check_blocks.max(1));
    PENDING_CHECKS.insert(
        overlay,
        &id,
        &PendingCheck {
            body: body.clone(),
            fee,
            deadline,
        },
    );
    let mut due = CHECK_DEADLINES.get(overlay, &deadline)?.unwrap_or_default();
    due.push(id);
    CHECK_DEADLINES.insert(overlay, &deadline, &due);
    overlay.deposit_event(Event::SpotCheckRequested {
        id,
        worker: body.worker.clone(),
        layers: body.layers,
        deadline,
    });
    Ok(())
}

pub fn pending(state: &impl ReadState, id: &Hash) -> Result<Option<PendingCheck>> {
    Ok(PENDING_CHECKS.get(state, id)?)
}

/// Every pending check (for the node's spot checker and RPC).
pub fn all_pending(state: &impl ReadState) -> Result<Vec<(Hash, PendingCheck)>> {
    Ok(PENDING_CHECKS.entries(state)?)
}

pub fn slashed(state: &impl ReadState, who: &AccountId) -> Result<Balance> {
    Ok(SLASHED.get(state, who)?.unwrap_or(0))
}

/// The block of `who`'s last `Mismatch` verdict, if any.
pub fn convicted(state: &impl ReadState, who: &AccountId) -> Result<Option<BlockNumber>> {
    Ok(CONVICTED.get(state, who)?)
}

fn take(overlay: &mut Overlay<'_>, id: &Hash) -> Result<PendingCheck> {
    let check = PENDING_CHECKS
        .get(overlay, id)?
        .ok_or(Error::NoPendingCheck(*id))?;
    PENDING_CHECKS.remove(overlay, id);
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

fn credit_held(overlay: &mut Overlay<'_>, body: &ReceiptBody) -> Result<()> {
    let tokens = u64::from(body.tokens());
    rewards::credit(overlay, &body.worker, |t| {
        t.tokens += tokens;
        t.layer_tokens += tokens * u64::from(body.layers.len());
    })
}

/// `submit_spot_check`: a validator's verdict on a pending check (the runtime has
/// checked that `checker` is a validator).
pub fn submit_verdict(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    checker: &AccountId,
    id: &Hash,
    verdict: SpotCheckVerdict,
) -> Result<()> {
    let check = take(overlay, id)?;
    let worker = check.body.worker.clone();
    if verdict == SpotCheckVerdict::Match {
        credit_held(overlay, &check.body)?;
        overlay.deposit_event(Event::SpotCheckPassed {
            id: *id,
            worker,
            checker: checker.clone(),
        });
        return Ok(());
    }
    if verdict == SpotCheckVerdict::Mismatch {
        CONVICTED.insert(overlay, &worker, &now);
    }
    let (slashed, refunded) = slash(overlay, id, &worker, &check.body.client, check.fee)?;
    overlay.deposit_event(Event::SpotCheckFailed {
        id: *id,
        worker,
        checker: checker.clone(),
        verdict,
        slashed,
        refunded,
    });
    Ok(())
}

/// Slashes a worker for the failed check of `receipt`: up to `spot_check_slash` of its
/// bond, of which the client's `fee` is refunded and the rest burned. Returns (slashed,
/// refunded).
fn slash(
    overlay: &mut Overlay<'_>,
    receipt: &Hash,
    worker: &AccountId,
    client: &AccountId,
    fee: Balance,
) -> Result<(Balance, Balance)> {
    let p = params(overlay)?;
    let Some(mut info) = workers::worker(overlay, worker)? else {
        // Deregistered already (its bond was slashed below the minimum and released).
        return Ok((0, 0));
    };
    let amount = p.spot_check_slash.min(info.bond);
    let refunded = fee.min(amount);
    if amount > 0 {
        balances::pay_from_reserved(overlay, worker, client, amount, amount - refunded)?;
        info.bond -= amount;
        let total = slashed(overlay, worker)?.saturating_add(amount);
        SLASHED.insert(overlay, worker, &total);
        overlay.deposit_event(Event::Slashed {
            who: worker.clone(),
            amount,
            reason: SlashReason::FailedSpotCheck { receipt: *receipt },
        });
    }
    if info.bond < p.worker_bond {
        workers::remove(overlay, worker, info.bond)?;
    } else {
        workers::WORKERS.insert(overlay, worker, &info);
    }
    Ok((amount, refunded))
}

/// Start of block: credits the checks whose deadline passed without a verdict.
pub(crate) fn expire(overlay: &mut Overlay<'_>, ctx: &BlockContext) -> Result<()> {
    let Some(due) = CHECK_DEADLINES.get(overlay, &ctx.number)? else {
        return Ok(());
    };
    CHECK_DEADLINES.remove(overlay, &ctx.number);
    for id in due {
        let Some(check) = PENDING_CHECKS.get(overlay, &id)? else {
            continue;
        };
        PENDING_CHECKS.remove(overlay, &id);
        credit_held(overlay, &check.body)?;
        overlay.deposit_event(Event::SpotCheckExpired {
            id,
            worker: check.body.worker,
        });
    }
    Ok(())
}

/// True when `who` has receipts awaiting a check (its bond cannot be released yet).
pub(crate) fn has_pending(state: &impl ReadState, who: &AccountId) -> Result<bool> {
    Ok(all_pending(state)?
        .iter()
        .any(|(_, c)| &c.body.worker == who))
}
