//! Client escrow and inference fees. A client locks escrow (reserved balance); every
//! receipt it counter-signs is paid from it: `fee = ceil(layer_tokens x fee_per_token /
//! num_layers)`, of which `ceil(fee x burn_permill / 1e6)` is burned and the rest goes
//! to the worker. The fee leaves the escrow when the receipt is accepted ([`commit`])
//! but stays in the client's reserved balance until the receipt settles ([`settle`]:
//! paid and burned) or is forfeited by a failed check ([`refund`]: back into the
//! escrow); see `crate::settlement`. Genesis requires the burn per token to be at least the minted
//! token reward, so a client paying its own worker can never come out ahead: whatever
//! the epoch mints for the work was burned from the same pair's fees first.
//!
//! Releasing escrow takes `escrow_release_blocks`, during which it still pays for
//! receipts, so a client cannot pull its funds out from under work already done.

use crate::{params, Error, Params, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{AccountId, Balance, BlockNumber, Event};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// One client's escrow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Escrow {
    /// What is left to pay fees with (held in the client's reserved balance).
    pub amount: Balance,
    /// When a release was requested: the block from which it can be withdrawn.
    pub release_at: Option<BlockNumber>,
}

pub const ESCROWS: StorageMap<AccountId, Escrow> = StorageMap::new("Ponw", "Escrows");

const PERMILL: Balance = 1_000_000;

/// The fee and the burned part of it for `layer_tokens` of work (both rounded up, so
/// the burn is never below the reward the same work mints).
pub fn fee_for(p: &Params, layer_tokens: u64) -> (Balance, Balance) {
    let layers = Balance::from(p.model.num_layers.max(1));
    let fee = Balance::from(layer_tokens)
        .saturating_mul(p.client_fee_per_token)
        .div_ceil(layers);
    let burn = fee
        .saturating_mul(Balance::from(p.fee_burn_permill))
        .div_ceil(PERMILL);
    (fee, burn.min(fee))
}

/// True when the parameters make self-dealing unprofitable: the burn per full-pipeline
/// token is at least the token reward.
pub fn burn_covers_reward(p: &Params) -> bool {
    p.fee_burn_permill as Balance <= PERMILL
        && p.client_fee_per_token
            .saturating_mul(Balance::from(p.fee_burn_permill))
            / PERMILL
            >= p.token_reward
}

pub fn escrow(state: &impl ReadState, client: &AccountId) -> Result<Escrow> {
    Ok(ESCROWS.get(state, client)?.unwrap_or_default())
}

/// `deposit_escrow`.
pub fn deposit(overlay: &mut Overlay<'_>, client: &AccountId, amount: Balance) -> Result<()> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    let mut e = escrow(overlay, client)?;
    balances::reserve(overlay, client, amount)?;
    e.amount = e
        .amount
        .checked_add(amount)
        .ok_or(balances::Error::Overflow)?;
    ESCROWS.insert(overlay, client, &e);
    overlay.deposit_event(Event::EscrowDeposited {
        client: client.clone(),
        amount,
    });
    Ok(())
}

/// `request_escrow_release`.
pub fn request_release(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    client: &AccountId,
) -> Result<()> {
    let mut e = escrow(overlay, client)?;
    if e.amount == 0 {
        return Err(Error::NoEscrow);
    }
    if e.release_at.is_some() {
        return Err(Error::ReleaseAlreadyRequested);
    }
    let release_at = ctx
        .number
        .saturating_add(params(overlay)?.escrow_release_blocks);
    e.release_at = Some(release_at);
    ESCROWS.insert(overlay, client, &e);
    overlay.deposit_event(Event::EscrowReleaseRequested {
        client: client.clone(),
        release_at,
    });
    Ok(())
}

/// `withdraw_escrow`.
pub fn withdraw(overlay: &mut Overlay<'_>, ctx: &BlockContext, client: &AccountId) -> Result<()> {
    let e = escrow(overlay, client)?;
    match e.release_at {
        None => return Err(Error::ReleaseNotRequested),
        Some(at) if at > ctx.number => return Err(Error::EscrowLocked { until: at }),
        Some(_) => {}
    }
    balances::unreserve(overlay, client, e.amount)?;
    ESCROWS.remove(overlay, client);
    overlay.deposit_event(Event::EscrowWithdrawn {
        client: client.clone(),
        amount: e.amount,
    });
    Ok(())
}

/// Takes one receipt's fee out of the client's escrow (the caller checked it
/// suffices); the funds stay reserved until [`settle`] or [`refund`].
pub(crate) fn commit(overlay: &mut Overlay<'_>, client: &AccountId, fee: Balance) -> Result<()> {
    let mut e = escrow(overlay, client)?;
    e.amount = e.amount.checked_sub(fee).ok_or(Error::NoEscrow)?;
    ESCROWS.insert(overlay, client, &e);
    Ok(())
}

/// Pays committed fees: `burn` destroyed, the rest to the worker's free balance.
pub(crate) fn settle(
    overlay: &mut Overlay<'_>,
    client: &AccountId,
    worker: &AccountId,
    fee: Balance,
    burn: Balance,
) -> Result<()> {
    balances::pay_from_reserved(overlay, client, worker, fee, burn)?;
    Ok(())
}

/// Returns committed fees to the client's escrow.
pub(crate) fn refund(overlay: &mut Overlay<'_>, client: &AccountId, fee: Balance) -> Result<()> {
    let mut e = escrow(overlay, client)?;
    e.amount = e.amount.saturating_add(fee);
    ESCROWS.insert(overlay, client, &e);
    Ok(())
}
