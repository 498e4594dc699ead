//! Forfeits owed: what hiding from a check costs. A sampled receipt whose worker hands
//! over nothing (`NoAnswer`, agreed by two drawn checkers) forfeits every receipt the
//! worker holds, as a failed check does, but never takes its bond while it serves (an
//! unreachable honest worker looks the same, so an honest fault must cost income, not
//! bond).
//!
//! Forfeiting what happens to be held is not enough: a worker that fakes every receipt
//! and hides whenever one is drawn loses only the receipts of one check window, which
//! for a worker with few receipts a window is less than the compute faking saves
//! (docs/ECONOMICS.md, finding 3). So a decided `NoAnswer` also leaves the worker
//! **owing** the rest of a failed check's slash: `slash_for(fee)` (`DETERRENCE x fee /
//! p`) minus the fees it just forfeited. The expected cost of hiding a cheated receipt
//! is then at least `p x slash_for(fee) = DETERRENCE x fee`, the same as answering with
//! a wrong one, whatever the worker's volume.
//!
//! The debt is paid from income: while a worker owes, each receipt of it that settles
//! pays the debt instead of the worker (its whole fee is burned and its tokens are not
//! credited; a receipt pays `fee` off the debt, the last one possibly more than was
//! left). A worker that keeps serving never pays from its bond. One that leaves owing
//! pays the rest from its bond when the bond is released (`workers`), so leaving and
//! registering a new account does not escape it. The debt does not count against the
//! exposure cap, so an honest worker can always work it off; a worker whose debt runs
//! past its bond (hiding check after check) has earned nothing meanwhile, since every
//! receipt it settled went to the debt, so the part the bond cannot pay at exit is not
//! a gain.
//!
//! An audited capacity claim left unopened (`capacity_audit`) leaves its worker owing
//! the capacity slash the same way: a worker that crashed between its claim and the
//! opening keeps its bond while it serves. Every epoch reward (uptime and tokens) pays
//! the debt before anything is minted to the worker ([`pay_from_reward`]), so a worker
//! whose debts grow faster than its income is paid nothing and leaves its bond.

use crate::{params, settlement::slash_for, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{AccountId, Balance, Event};
use neuroshard_support::{Overlay, ReadState, StorageMap};

/// What each worker still owes of its hidden checks' slashes (fee units, base units).
pub const OWED: StorageMap<AccountId, Balance> = StorageMap::new("Ponw", "ForfeitsOwed");

/// What `who` owes.
pub fn owed(state: &impl ReadState, who: &AccountId) -> Result<Balance> {
    Ok(OWED.get(state, who)?.unwrap_or(0))
}

fn put(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) {
    if amount == 0 {
        OWED.remove(overlay, who);
    } else {
        OWED.insert(overlay, who, &amount);
    }
}

/// A `NoAnswer` on a receipt paying `fee` was decided and `forfeited` fees went back to
/// the clients: `worker` now also owes what a failed check would have slashed beyond
/// them. Returns the amount added.
pub(crate) fn incur(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    fee: Balance,
    forfeited: Balance,
) -> Result<Balance> {
    let amount = slash_for(&params(overlay)?, fee).saturating_sub(forfeited);
    owe(overlay, worker, amount)
}

/// `worker` now owes `amount` more (`ForfeitOwed`). Returns the amount added.
pub(crate) fn owe(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    amount: Balance,
) -> Result<Balance> {
    if amount == 0 {
        return Ok(0);
    }
    let total = owed(overlay, worker)?.saturating_add(amount);
    put(overlay, worker, total);
    overlay.deposit_event(Event::ForfeitOwed {
        worker: worker.clone(),
        amount,
        owed: total,
    });
    Ok(amount)
}

/// Splits `worker`'s settling receipts (their fees, in order) into those that pay its
/// debt and those that pay the worker: returns how many of the first ones go to the
/// debt, and records the payment.
pub(crate) fn pay_from_receipts(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    fees: &[Balance],
) -> Result<usize> {
    let before = owed(overlay, worker)?;
    if before == 0 {
        return Ok(0);
    }
    let (mut left, mut count, mut paid) = (before, 0usize, 0 as Balance);
    for fee in fees {
        if left == 0 {
            break;
        }
        left = left.saturating_sub(*fee);
        paid = paid.saturating_add(*fee);
        count += 1;
    }
    put(overlay, worker, left);
    overlay.deposit_event(Event::ForfeitPaid {
        worker: worker.clone(),
        receipts: count as u32,
        amount: paid.min(before),
        owed: left,
        from_bond: false,
    });
    Ok(count)
}

/// `worker`'s epoch `reward` is about to be minted: what it owes is paid from it first.
/// Returns what is left to mint.
pub(crate) fn pay_from_reward(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    reward: Balance,
) -> Result<Balance> {
    let before = owed(overlay, worker)?;
    let amount = before.min(reward);
    if amount == 0 {
        return Ok(reward);
    }
    put(overlay, worker, before - amount);
    overlay.deposit_event(Event::ForfeitPaid {
        worker: worker.clone(),
        receipts: 0,
        amount,
        owed: before - amount,
        from_bond: false,
    });
    Ok(reward - amount)
}

/// `worker`'s bond `releasing` is about to be released: what it owes is burned from it
/// first. Returns the amount taken.
pub(crate) fn pay_from_bond(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    releasing: Balance,
) -> Result<Balance> {
    let before = owed(overlay, worker)?;
    let amount = before.min(releasing);
    if amount == 0 {
        return Ok(0);
    }
    balances::pay_from_reserved(overlay, worker, worker, amount, amount)?;
    put(overlay, worker, before - amount);
    overlay.deposit_event(Event::ForfeitPaid {
        worker: worker.clone(),
        receipts: 0,
        amount,
        owed: before - amount,
        from_bond: true,
    });
    Ok(amount)
}
