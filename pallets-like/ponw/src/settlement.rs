//! Settlement: nothing a receipt earns is paid when it is accepted. Its fee leaves the
//! client's escrow but stays reserved, and its tokens are not credited, until its check
//! window (`spot_check_blocks`) closes:
//! - [`DRAW_DELAY`] blocks after inclusion the receipt is drawn for a spot check (or not)
//!   from *that* block's randomness, which neither the worker (it cannot grind its
//!   receipt id against it) nor the including author knew; a sampled receipt waits for
//!   its check (`crate::spot_checks`);
//! - at the end of the window an unsampled (or passed) receipt settles: the fee is paid
//!   (burn destroyed, the rest to the worker) and its tokens are credited to the epoch;
//! - a check decided against the worker forfeits *every* receipt it still holds: the
//!   fees go back to the clients' escrows and nothing is credited.
//!
//! So a worker always has about one window of earnings at stake, which a failed check
//! takes away, and what it can hold is capped by its bond: a new receipt is refused
//! ([`RejectReason::ExposureExceeded`]) when the expected slash of cheating on everything
//! it holds (`DETERRENCE x fees`, see [`slash_for`]) would exceed the bond.
//!
//! An author that leaves a receipt out changes nothing: whenever it is included, its draw
//! comes from a later block. An author can only withhold its own block at the draw
//! height (losing the block's fees and rewards) to re-roll the draws of that one block;
//! a worker colluding with authors holding a share `s` of the slots is sampled with
//! probability at least `p x (1 - s)`, which [`slash_for`] covers for `s <= 1/3`.

use crate::{escrow, owed, params, rewards, spot_checks, Params, Result};
use neuroshard_primitives::{
    AccountId, Balance, BlockNumber, Event, Hash, ReceiptBody, RejectReason,
};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};
use std::collections::BTreeMap;

/// Blocks between a receipt's inclusion and its draw.
pub const DRAW_DELAY: u64 = 2;
/// A failed check's slash is `fee x DETERRENCE / p` (`p`: the sampling rate), so that the
/// expected slash of a cheated receipt is `DETERRENCE x fee`, above the fee (what
/// skipping the work can save) even when colluders with a third of the validators' bond
/// pass 41% of the checks (`docs/PONW-SECURITY.md`): `(num, den)`.
pub const DETERRENCE: (Balance, Balance) = (2, 1);

/// An accepted receipt whose earnings are held.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct HeldReceipt {
    pub body: ReceiptBody,
    /// The client's fee and the part of it that is burned at settlement.
    pub fee: Balance,
    pub burn: Balance,
    /// The block at which its check window closes.
    pub settle_at: BlockNumber,
    /// Drawn for a check not yet decided: it settles only once the check passes.
    pub awaiting_check: bool,
}

/// A worker's held receipts and the sum of their fees.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Holding {
    pub receipts: Vec<Hash>,
    pub fees: Balance,
    pub earnings: Balance,
}

pub const HELD: StorageMap<Hash, HeldReceipt> = StorageMap::new("Ponw", "HeldReceipts");
pub const HOLDINGS: StorageMap<AccountId, Holding> = StorageMap::new("Ponw", "Holdings");
/// Receipt ids drawn (or not) for a check at a block.
pub const DRAWS: StorageMap<BlockNumber, Vec<Hash>> = StorageMap::new("Ponw", "Draws");
/// Receipt ids whose check window closes at a block.
pub const SETTLEMENTS: StorageMap<BlockNumber, Vec<Hash>> = StorageMap::new("Ponw", "Settlements");

pub fn held(state: &impl ReadState, id: &Hash) -> Result<Option<HeldReceipt>> {
    Ok(HELD.get(state, id)?)
}

/// What `worker` holds unsettled.
pub fn holding(state: &impl ReadState, worker: &AccountId) -> Result<Holding> {
    Ok(HOLDINGS.get(state, worker)?.unwrap_or_default())
}

/// The slash for a failed check of a receipt paying `fee`: `fee x DETERRENCE / p`, at
/// least `spot_check_slash`.
pub fn slash_for(p: &Params, fee: Balance) -> Balance {
    let permill = Balance::from(p.spot_check_permill.max(1));
    let scaled = fee
        .saturating_mul(DETERRENCE.0)
        .saturating_mul(1_000_000)
        .div_ceil(DETERRENCE.1.saturating_mul(permill));
    scaled.max(p.spot_check_slash)
}

/// The expected slash of cheating on receipts paying `fees` in total (what a bond must
/// answer for): `DETERRENCE x fees`.
pub fn exposure_of(fees: Balance) -> Balance {
    fees.saturating_mul(DETERRENCE.0).div_ceil(DETERRENCE.1)
}

/// Why a receipt paying `fee` cannot be held by a worker with `bond` that already holds
/// `fees`: `None` when it can.
pub(crate) fn refuse_exposure(bond: Balance, fees: Balance, fee: Balance) -> Option<RejectReason> {
    (exposure_of(fees.saturating_add(fee)) > bond).then_some(RejectReason::ExposureExceeded)
}

/// Holds a batch's accepted receipts (fee and burn each): takes the fees out of the
/// clients' escrows and schedules each receipt's draw and settlement.
pub(crate) fn hold(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    accepted: Vec<(ReceiptBody, Balance, Balance)>,
) -> Result<()> {
    if accepted.is_empty() {
        return Ok(());
    }
    let p = params(overlay)?;
    let settle_at = ctx
        .number
        .saturating_add(p.spot_check_blocks.max(DRAW_DELAY + 1));
    let draw_at = ctx.number.saturating_add(DRAW_DELAY);
    let mut by_worker: BTreeMap<AccountId, Holding> = BTreeMap::new();
    let mut ids = Vec::with_capacity(accepted.len());
    for (body, fee, burn) in accepted {
        let id = body.id();
        escrow::commit(overlay, &body.client, fee)?;
        let h = by_worker.entry(body.worker.clone()).or_default();
        h.receipts.push(id);
        h.fees = h.fees.saturating_add(fee);
        h.earnings = h.earnings.saturating_add(fee - burn);
        HELD.insert(
            overlay,
            &id,
            &HeldReceipt {
                body,
                fee,
                burn,
                settle_at,
                awaiting_check: false,
            },
        );
        ids.push(id);
    }
    for (worker, added) in by_worker {
        let mut h = holding(overlay, &worker)?;
        h.receipts.extend(added.receipts);
        h.fees = h.fees.saturating_add(added.fees);
        h.earnings = h.earnings.saturating_add(added.earnings);
        HOLDINGS.insert(overlay, &worker, &h);
    }
    for (map, at) in [(DRAWS, draw_at), (SETTLEMENTS, settle_at)] {
        let mut due = map.get(overlay, &at)?.unwrap_or_default();
        due.extend_from_slice(&ids);
        map.insert(overlay, &at, &due);
    }
    Ok(())
}

/// Start of block: draws the receipts included [`DRAW_DELAY`] blocks ago, opening a
/// check for each sampled one, then settles the receipts whose window closes now.
pub(crate) fn on_initialize(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    validators: &[(AccountId, Balance)],
) -> Result<()> {
    let p = params(overlay)?;
    if let Some(due) = DRAWS.get(overlay, &ctx.number)? {
        DRAWS.remove(overlay, &ctx.number);
        for id in due {
            let Some(mut held) = held(overlay, &id)? else {
                continue; // forfeited meanwhile
            };
            if spot_checks::is_sampled(&ctx.randomness, &id, p.spot_check_permill) {
                held.awaiting_check = true;
                HELD.insert(overlay, &id, &held);
                spot_checks::open(overlay, ctx, validators, id, &held.body, held.fee)?;
            }
        }
    }
    if let Some(due) = SETTLEMENTS.get(overlay, &ctx.number)? {
        SETTLEMENTS.remove(overlay, &ctx.number);
        let ready: Vec<(Hash, HeldReceipt)> = due
            .into_iter()
            .filter_map(|id| match held(overlay, &id) {
                Ok(Some(h)) if !h.awaiting_check => Some(Ok((id, h))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_>>()?;
        settle(overlay, ready)?;
    }
    Ok(())
}

/// A sampled receipt's check passed: it settles now if its window has closed, otherwise
/// when it closes.
pub(crate) fn check_passed(overlay: &mut Overlay<'_>, now: BlockNumber, id: &Hash) -> Result<()> {
    let Some(mut h) = held(overlay, id)? else {
        return Ok(());
    };
    if h.settle_at <= now {
        return settle(overlay, vec![(*id, h)]);
    }
    h.awaiting_check = false;
    HELD.insert(overlay, id, &h);
    Ok(())
}

/// Pays and credits `receipts`, one event per worker.
fn settle(overlay: &mut Overlay<'_>, receipts: Vec<(Hash, HeldReceipt)>) -> Result<()> {
    let mut by_worker: BTreeMap<AccountId, Vec<(Hash, HeldReceipt)>> = BTreeMap::new();
    for (id, h) in receipts {
        by_worker
            .entry(h.body.worker.clone())
            .or_default()
            .push((id, h));
    }
    for (worker, receipts) in by_worker {
        let (mut fees, mut earned, mut tokens, mut layer_tokens) = (0, 0, 0u64, 0u64);
        let mut done = Vec::with_capacity(receipts.len());
        // The first receipts pay what the worker owes of hidden checks (`crate::owed`).
        let receipt_fees: Vec<Balance> = receipts.iter().map(|(_, h)| h.fee).collect();
        let to_debt = owed::pay_from_receipts(overlay, &worker, &receipt_fees)?;
        for (n, (id, h)) in receipts.iter().enumerate() {
            HELD.remove(overlay, id);
            fees += h.fee;
            done.push(*id);
            if n < to_debt {
                escrow::settle(overlay, &h.body.client, &worker, h.fee, h.fee)?;
                continue;
            }
            escrow::settle(overlay, &h.body.client, &worker, h.fee, h.burn)?;
            earned += h.fee - h.burn;
            let t = u64::from(h.body.tokens());
            tokens += t;
            layer_tokens += t * u64::from(h.body.layers.len());
        }
        rewards::credit(overlay, &worker, |t| {
            t.tokens += tokens;
            t.layer_tokens += layer_tokens;
        })?;
        release(overlay, &worker, &done, fees, earned)?;
        overlay.deposit_event(Event::EarningsSettled {
            worker,
            receipts: done.len() as u32,
            earned,
            tokens,
        });
    }
    Ok(())
}

/// Forfeits everything `worker` holds: fees back to the clients' escrows, nothing
/// credited. Returns the fees refunded. (The caller releases a retired bond once the
/// decision is complete.)
pub(crate) fn forfeit_all(overlay: &mut Overlay<'_>, worker: &AccountId) -> Result<Balance> {
    let h = holding(overlay, worker)?;
    let mut refunded: Balance = 0;
    for id in &h.receipts {
        if let Some(r) = held(overlay, id)? {
            escrow::refund(overlay, &r.body.client, r.fee)?;
            HELD.remove(overlay, id);
            refunded = refunded.saturating_add(r.fee);
        }
    }
    HOLDINGS.remove(overlay, worker);
    Ok(refunded)
}

/// Takes settled receipts (`ids`, paying `fees` of which `earned` to the worker) out of
/// `worker`'s holding, and releases a retired bond once nothing is left.
fn release(
    overlay: &mut Overlay<'_>,
    worker: &AccountId,
    ids: &[Hash],
    fees: Balance,
    earned: Balance,
) -> Result<()> {
    let mut h = holding(overlay, worker)?;
    let settled: std::collections::BTreeSet<&Hash> = ids.iter().collect();
    h.receipts.retain(|id| !settled.contains(id));
    h.fees = h.fees.saturating_sub(fees);
    h.earnings = h.earnings.saturating_sub(earned);
    if h.receipts.is_empty() {
        HOLDINGS.remove(overlay, worker);
        crate::workers::release_retired_bond(overlay, worker)?;
    } else {
        HOLDINGS.insert(overlay, worker, &h);
    }
    Ok(())
}

/// True when `who` holds unsettled receipts, has checks pending or capacity claims
/// undecided (its bond answers for them and cannot be released yet).
pub(crate) fn has_unsettled(state: &impl ReadState, who: &AccountId) -> Result<bool> {
    Ok(HOLDINGS.get(state, who)?.is_some()
        || spot_checks::has_pending(state, who)?
        || crate::capacity::has_pending(state, who)?)
}
