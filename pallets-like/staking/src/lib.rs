//! Staking: bonds (free balance locked as stake), unbonding with a delay so a bond stays
//! slashable for a while after it is released, and the validator set that authors and
//! finalises blocks.

use neuroshard_balances as balances;
use neuroshard_primitives::{
    format_balance, AccountId, Balance, BlockNumber, Event, Header, SlashReason,
};
use neuroshard_support::{
    BlockContext, Overlay, Pallet, ReadState, StorageError, StorageMap, StorageValue,
};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub struct Staking;

impl Pallet for Staking {
    const NAME: &'static str = "Staking";
    const INDEX: u8 = 2;
    /// `Slashed` is every bond's slash (staking's, and ponw's and training's penalties).
    const EVENTS: &'static [&'static str] = &["Bonded", "Unbonded", "Withdrawn", "Slashed"];
}

/// Chain-spec parameters of the pallet.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct Params {
    /// Blocks between `unbond` and the moment the amount can be withdrawn.
    pub unbonding_blocks: BlockNumber,
    /// Bond a validator must keep.
    #[serde(with = "balances::decimal_string")]
    pub min_validator_bond: Balance,
}

/// Most unbonding chunks an account may have pending at once.
pub const MAX_UNBONDING_CHUNKS: usize = 32;

/// An amount on its way out of the bond.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct UnbondingChunk {
    pub amount: Balance,
    pub unlock_at: BlockNumber,
}

pub const PARAMS: StorageValue<Params> = StorageValue::new(Staking::NAME, "Params");
pub const VALIDATORS: StorageValue<Vec<AccountId>> = StorageValue::new(Staking::NAME, "Validators");
pub const UNBONDING: StorageMap<AccountId, Vec<UnbondingChunk>> =
    StorageMap::new(Staking::NAME, "Unbonding");
/// Offences already punished, by (offender, slot): one slash per offence.
pub const PUNISHED: StorageMap<(AccountId, u64), ()> = StorageMap::new(Staking::NAME, "Punished");

/// Share of the bond an equivocation destroys, in percent.
pub const EQUIVOCATION_SLASH_PERCENT: u128 = 20;

#[derive(Debug, Error, Clone, PartialEq, Eq, scale_info::TypeInfo)]
pub enum Error {
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("validators must keep at least {} NSHD bonded; unbonding that much would leave {}", format_balance(*minimum), format_balance(*remaining))]
    ValidatorBondTooLow {
        minimum: Balance,
        remaining: Balance,
    },
    #[error("too many unbonding chunks pending (max {MAX_UNBONDING_CHUNKS}); withdraw first")]
    TooManyChunks,
    #[error("nothing is unlocked yet")]
    NothingToWithdraw,
    #[error("genesis validator {0} has a bond below the minimum")]
    GenesisBondTooLow(AccountId),
    #[error("not an equivocation: {0}")]
    NotEquivocation(&'static str),
    #[error("this equivocation was already punished")]
    AlreadyPunished,
    #[error("pallet parameters missing from state (genesis not built?)")]
    MissingParams,
    #[error(transparent)]
    Balances(#[from] balances::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The pallet's declarations for the runtime metadata; the constants are read from
/// `state`.
pub fn metadata(state: &impl ReadState) -> Result<neuroshard_support::PalletDecl> {
    use neuroshard_support::constant;
    let p = params(state)?;
    Ok(
        neuroshard_support::PalletDecl::new(Staking::NAME, Staking::INDEX)
            .calls::<neuroshard_primitives::StakingCall>()
            .events::<Staking>()
            .errors::<Error>()
            .storage(vec![
                PARAMS.metadata("The pallet's chain-spec parameters."),
                VALIDATORS.metadata("The validator set."),
                UNBONDING.metadata("Amounts on their way out of each bond."),
                PUNISHED.metadata("Offences already punished, by (offender, slot)."),
            ])
            .constants(vec![
                constant(
                    "UnbondingBlocks",
                    &p.unbonding_blocks,
                    "Blocks between unbond and withdrawal.",
                ),
                constant(
                    "MinValidatorBond",
                    &p.min_validator_bond,
                    "Bond a validator must keep.",
                ),
            ]),
    )
}

pub fn params(state: &impl ReadState) -> Result<Params> {
    PARAMS.get(state)?.ok_or(Error::MissingParams)
}

/// The current validator set, in genesis order.
pub fn validators(state: &impl ReadState) -> Result<Vec<AccountId>> {
    Ok(VALIDATORS.get(state)?.unwrap_or_default())
}

/// Pending unbonding chunks of an account.
pub fn unbonding(state: &impl ReadState, who: &AccountId) -> Result<Vec<UnbondingChunk>> {
    Ok(UNBONDING.get(state, who)?.unwrap_or_default())
}

/// Genesis: parameters and validators with their initial bonds (taken from free balance).
pub fn build_genesis(
    overlay: &mut Overlay<'_>,
    p: &Params,
    validators: &[(AccountId, Balance)],
) -> Result<()> {
    PARAMS.put(overlay, p);
    for (who, amount) in validators {
        if *amount < p.min_validator_bond {
            return Err(Error::GenesisBondTooLow(who.clone()));
        }
        balances::bond(overlay, who, *amount)?;
    }
    let set: Vec<AccountId> = validators.iter().map(|(who, _)| who.clone()).collect();
    VALIDATORS.put(overlay, &set);
    Ok(())
}

/// `report_equivocation`: two headers sealed by one author for one slot. Both seals
/// must verify and the headers must differ; the author loses
/// [`EQUIVOCATION_SLASH_PERCENT`] of its bond, once per offence.
pub fn report_equivocation(
    overlay: &mut Overlay<'_>,
    first: &Header,
    second: &Header,
) -> Result<()> {
    if first.slot() != second.slot() {
        return Err(Error::NotEquivocation(
            "the headers are for different slots",
        ));
    }
    if first.author() != second.author() {
        return Err(Error::NotEquivocation("the headers have different authors"));
    }
    if first.hash() == second.hash() {
        return Err(Error::NotEquivocation("the headers are the same"));
    }
    if !first.seal_is_valid() || !second.seal_is_valid() {
        return Err(Error::NotEquivocation("a seal does not verify"));
    }
    let offence = (first.author().clone(), first.slot());
    if PUNISHED.get(overlay, &offence)?.is_some() {
        return Err(Error::AlreadyPunished);
    }
    PUNISHED.insert(overlay, &offence, &());
    let bonded = balances::account(overlay, first.author())?.bonded;
    let amount = balances::slash_bonded(
        overlay,
        first.author(),
        bonded * EQUIVOCATION_SLASH_PERCENT / 100,
    )?;
    overlay.deposit_event(Event::Slashed {
        who: first.author().clone(),
        amount,
        reason: SlashReason::Equivocation { slot: first.slot() },
    });
    Ok(())
}

/// `bond`: locks free balance as stake.
pub fn bond(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    balances::bond(overlay, who, amount)?;
    overlay.deposit_event(Event::Bonded {
        who: who.clone(),
        amount,
    });
    Ok(())
}

/// `unbond`: starts releasing part of the bond; it becomes withdrawable after
/// `unbonding_blocks`.
pub fn unbond(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    amount: Balance,
) -> Result<()> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    let p = params(overlay)?;
    let bonded = balances::account(overlay, who)?.bonded;
    if validators(overlay)?.contains(who) {
        let remaining = bonded.saturating_sub(amount);
        if remaining < p.min_validator_bond {
            return Err(Error::ValidatorBondTooLow {
                minimum: p.min_validator_bond,
                remaining,
            });
        }
    }
    let mut chunks = unbonding(overlay, who)?;
    if chunks.len() >= MAX_UNBONDING_CHUNKS {
        return Err(Error::TooManyChunks);
    }
    balances::unbond_to_reserved(overlay, who, amount)?;
    let unlock_at = ctx.number.saturating_add(p.unbonding_blocks);
    chunks.push(UnbondingChunk { amount, unlock_at });
    UNBONDING.insert(overlay, who, &chunks);
    overlay.deposit_event(Event::Unbonded {
        who: who.clone(),
        amount,
        unlock_at,
    });
    Ok(())
}

/// `withdraw_unbonded`: frees every chunk whose unlock block has come.
pub fn withdraw_unbonded(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
) -> Result<()> {
    let chunks = unbonding(overlay, who)?;
    let (ready, pending): (Vec<_>, Vec<_>) =
        chunks.into_iter().partition(|c| c.unlock_at <= ctx.number);
    let amount: Balance = ready.iter().map(|c| c.amount).sum();
    if amount == 0 {
        return Err(Error::NothingToWithdraw);
    }
    balances::unreserve(overlay, who, amount)?;
    if pending.is_empty() {
        UNBONDING.remove(overlay, who);
    } else {
        UNBONDING.insert(overlay, who, &pending);
    }
    overlay.deposit_event(Event::Withdrawn {
        who: who.clone(),
        amount,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
