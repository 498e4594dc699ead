//! Balances: the account record (nonce, free, reserved, bonded), transfers, transaction
//! fees (burned), minting and burning with a tracked total issuance, and the moves
//! between free, bonded and reserved balance that staking and PoNW build on.
//!
//! Accounts are stored as Substrate's `System.Account` ([`AccountInfo`]), so wallets
//! read them unmodified: the bond is frozen free balance there, as a Substrate staking
//! lock is (`free` = spendable + bonded, `frozen` = bonded); [`AccountData`] is this
//! pallet's view of the same record.
//!
//! Every function here either completes or returns an error without writing; callers
//! run them inside an overlay transaction so a failure anywhere changes nothing.

use neuroshard_primitives::{format_balance, AccountId, Balance, Event, Nonce};
use neuroshard_support::{Overlay, Pallet, ReadState, StorageError, StorageMap, StorageValue};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub struct Balances;

impl Pallet for Balances {
    const NAME: &'static str = "Balances";
    const INDEX: u8 = 0;
    const EVENTS: &'static [&'static str] = &["Transfer", "FeeBurned", "DustLost"];
}

/// Chain-spec parameters of the pallet (base units).
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct Params {
    /// Smallest balance a new account may be created with.
    #[serde(with = "decimal_string")]
    pub existential_deposit: Balance,
    /// Flat fee of every fee-paying extrinsic.
    #[serde(with = "decimal_string")]
    pub base_fee: Balance,
    /// Fee per byte of the encoded extrinsic.
    #[serde(with = "decimal_string")]
    pub byte_fee: Balance,
}

/// One account's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct AccountData {
    pub nonce: Nonce,
    /// Spendable balance.
    pub free: Balance,
    /// Locked, not bonded: unbonding chunks and escrows.
    pub reserved: Balance,
    /// Locked as stake; slashable.
    pub bonded: Balance,
}

impl AccountData {
    pub fn total(&self) -> Balance {
        self.free
            .saturating_add(self.reserved)
            .saturating_add(self.bonded)
    }
}

/// An account as Substrate's `frame_system::AccountInfo` stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct AccountInfo {
    pub nonce: Nonce,
    /// Modules depending on the account (1 while it has a bond).
    pub consumers: u32,
    /// 1 while the account holds any balance.
    pub providers: u32,
    pub sufficients: u32,
    pub data: SubstrateAccountData,
}

/// Substrate's `pallet_balances::AccountData`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct SubstrateAccountData {
    /// Spendable plus frozen (bonded) balance.
    pub free: Balance,
    pub reserved: Balance,
    /// The part of `free` that cannot move: the bond.
    pub frozen: Balance,
    pub flags: u128,
}

/// Substrate's marker of the new reserve logic (`ExtraFlags::new_logic`), set on every
/// account as a current Substrate chain does.
const NEW_LOGIC_FLAG: u128 = 1 << 127;

impl From<&AccountData> for AccountInfo {
    fn from(a: &AccountData) -> Self {
        Self {
            nonce: a.nonce,
            consumers: u32::from(a.bonded > 0),
            providers: u32::from(a.total() > 0),
            sufficients: 0,
            data: SubstrateAccountData {
                free: a.free.saturating_add(a.bonded),
                reserved: a.reserved,
                frozen: a.bonded,
                flags: NEW_LOGIC_FLAG,
            },
        }
    }
}

impl From<&AccountInfo> for AccountData {
    fn from(info: &AccountInfo) -> Self {
        Self {
            nonce: info.nonce,
            free: info.data.free.saturating_sub(info.data.frozen),
            reserved: info.data.reserved,
            bonded: info.data.frozen,
        }
    }
}

impl AccountData {
    /// Reads a stored `System.Account` value (e.g. from `state_getStorage`).
    pub fn from_stored(mut bytes: &[u8]) -> std::result::Result<Self, parity_scale_codec::Error> {
        Ok(Self::from(&AccountInfo::decode(&mut bytes)?))
    }

    /// The stored `System.Account` value of this record.
    pub fn to_stored(&self) -> Vec<u8> {
        AccountInfo::from(self).encode()
    }
}

/// Accounts, under Substrate's `System.Account` so wallets find them.
pub const ACCOUNTS: StorageMap<AccountId, AccountInfo> =
    StorageMap::new("System", "Account").value_query();
pub const TOTAL_ISSUANCE: StorageValue<Balance> =
    StorageValue::new(Balances::NAME, "TotalIssuance").value_query();
pub const PARAMS: StorageValue<Params> = StorageValue::new(Balances::NAME, "Params");

#[derive(Debug, Error, Clone, PartialEq, Eq, scale_info::TypeInfo)]
pub enum Error {
    #[error("insufficient free balance: needs {} NSHD, has {} NSHD", format_balance(*needed), format_balance(*available))]
    InsufficientBalance { needed: Balance, available: Balance },
    #[error("insufficient bonded balance: needs {} NSHD, has {} NSHD bonded", format_balance(*needed), format_balance(*available))]
    InsufficientBond { needed: Balance, available: Balance },
    #[error("insufficient reserved balance: needs {needed}, has {available}")]
    InsufficientReserved { needed: Balance, available: Balance },
    #[error("transfer of {} NSHD would create an account below the existential deposit of {} NSHD", format_balance(*amount), format_balance(*minimum))]
    BelowExistentialDeposit { amount: Balance, minimum: Balance },
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("cannot transfer to yourself")]
    SelfTransfer,
    #[error("balance arithmetic overflow")]
    Overflow,
    #[error("pallet parameters missing from state (genesis not built?)")]
    MissingParams,
    #[error("a keep-alive transfer of {} NSHD would leave the sender below the existential deposit of {} NSHD (transfer_allow_death may)", format_balance(*amount), format_balance(*minimum))]
    Expendability { amount: Balance, minimum: Balance },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Reads an account (an absent account is all zeros).
pub fn account(state: &impl ReadState, who: &AccountId) -> Result<AccountData> {
    Ok(ACCOUNTS
        .get(state, who)?
        .map(|info| AccountData::from(&info))
        .unwrap_or_default())
}

fn put(overlay: &mut Overlay<'_>, who: &AccountId, data: &AccountData) {
    ACCOUNTS.insert(overlay, who, &AccountInfo::from(data));
}

pub fn params(state: &impl ReadState) -> Result<Params> {
    PARAMS.get(state)?.ok_or(Error::MissingParams)
}

pub fn total_issuance(state: &impl ReadState) -> Result<Balance> {
    Ok(TOTAL_ISSUANCE.get(state)?.unwrap_or(0))
}

/// Genesis: parameters and endowed accounts (minted).
pub fn build_genesis(
    overlay: &mut Overlay<'_>,
    p: &Params,
    endowed: &[(AccountId, Balance)],
) -> Result<()> {
    PARAMS.put(overlay, p);
    TOTAL_ISSUANCE.put(overlay, &0);
    for (who, amount) in endowed {
        mint(overlay, who, *amount)?;
    }
    Ok(())
}

/// The fee of an extrinsic of `encoded_len` bytes.
pub fn fee(p: &Params, encoded_len: usize) -> Balance {
    p.base_fee
        .saturating_add(p.byte_fee.saturating_mul(encoded_len as Balance))
}

/// Fails unless `who` can pay `amount` from free balance.
pub fn ensure_can_pay(state: &impl ReadState, who: &AccountId, amount: Balance) -> Result<()> {
    let data = account(state, who)?;
    if data.free < amount {
        return Err(Error::InsufficientBalance {
            needed: amount,
            available: data.free,
        });
    }
    Ok(())
}

/// Takes `amount` from `who`'s free balance and destroys it.
pub fn burn(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    let mut data = account(overlay, who)?;
    data.take(Pot::Free, amount)?;
    put(overlay, who, &data);
    let issuance = total_issuance(overlay)?.saturating_sub(amount);
    TOTAL_ISSUANCE.put(overlay, &issuance);
    Ok(())
}

/// Charges and burns a transaction fee.
pub fn charge_fee(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    burn(overlay, who, amount)?;
    overlay.deposit_event(Event::FeeBurned {
        who: who.clone(),
        amount,
    });
    Ok(())
}

/// Creates `amount` new tokens in `who`'s free balance.
pub fn mint(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    let mut data = account(overlay, who)?;
    data.free = data.free.checked_add(amount).ok_or(Error::Overflow)?;
    let issuance = total_issuance(overlay)?
        .checked_add(amount)
        .ok_or(Error::Overflow)?;
    put(overlay, who, &data);
    TOTAL_ISSUANCE.put(overlay, &issuance);
    Ok(())
}

/// Returns the account's next nonce.
pub fn nonce(state: &impl ReadState, who: &AccountId) -> Result<Nonce> {
    Ok(account(state, who)?.nonce)
}

/// Increments the account's nonce.
pub fn increment_nonce(overlay: &mut Overlay<'_>, who: &AccountId) -> Result<()> {
    let mut data = account(overlay, who)?;
    data.nonce = data.nonce.checked_add(1).ok_or(Error::Overflow)?;
    put(overlay, who, &data);
    Ok(())
}

/// Whether a transfer may take the sender below the existential deposit (Substrate's
/// `transfer_allow_death` / `transfer_keep_alive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existence {
    /// Refused if the sender would be left with less than the existential deposit.
    KeepAlive,
    /// A sender left with less than the existential deposit (and nothing reserved or
    /// bonded) is reaped: the dust is burned (`DustLost`).
    AllowDeath,
}

/// Moves `amount` of free balance from `from` to `to` (`transfer_allow_death`).
pub fn transfer(
    overlay: &mut Overlay<'_>,
    from: &AccountId,
    to: &AccountId,
    amount: Balance,
) -> Result<()> {
    transfer_with(overlay, from, to, amount, Existence::AllowDeath)
}

/// Moves `amount` of free balance from `from` to `to`; what may become of a sender left
/// below the existential deposit is `existence`'s. The receiver must end at or above
/// it. A reaped account keeps its record with its nonce and nothing else, unlike
/// Substrate's, which deletes it: a nonce starting again from 0 would let anyone replay
/// the account's old immortal extrinsics once it is funded again.
pub fn transfer_with(
    overlay: &mut Overlay<'_>,
    from: &AccountId,
    to: &AccountId,
    amount: Balance,
    existence: Existence,
) -> Result<()> {
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    if from == to {
        return Err(Error::SelfTransfer);
    }
    let p = params(overlay)?;
    let mut sender = account(overlay, from)?;
    let mut receiver = account(overlay, to)?;
    sender.take(Pot::Free, amount)?;
    if receiver.total() == 0 && amount < p.existential_deposit {
        return Err(Error::BelowExistentialDeposit {
            amount,
            minimum: p.existential_deposit,
        });
    }
    let below = sender.total() < p.existential_deposit;
    if below && existence == Existence::KeepAlive {
        return Err(Error::Expendability {
            amount,
            minimum: p.existential_deposit,
        });
    }
    receiver.free = receiver.free.checked_add(amount).ok_or(Error::Overflow)?;
    let dust = if below && sender.reserved == 0 && sender.bonded == 0 {
        std::mem::take(&mut sender.free)
    } else {
        0
    };
    put(overlay, from, &sender);
    put(overlay, to, &receiver);
    overlay.deposit_event(Event::Transfer {
        from: from.clone(),
        to: to.clone(),
        amount,
    });
    if dust > 0 {
        let issuance = total_issuance(overlay)?.saturating_sub(dust);
        TOTAL_ISSUANCE.put(overlay, &issuance);
        overlay.deposit_event(Event::DustLost {
            account: from.clone(),
            amount: dust,
        });
    }
    Ok(())
}

/// The parts of an account's balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pot {
    Free,
    Reserved,
    Bonded,
}

impl AccountData {
    /// Removes `amount` from one part, or fails saying how much was there.
    fn take(&mut self, pot: Pot, amount: Balance) -> Result<()> {
        let available = *self.pot(pot);
        *self.pot(pot) = available.checked_sub(amount).ok_or(match pot {
            Pot::Free => Error::InsufficientBalance {
                needed: amount,
                available,
            },
            Pot::Reserved => Error::InsufficientReserved {
                needed: amount,
                available,
            },
            Pot::Bonded => Error::InsufficientBond {
                needed: amount,
                available,
            },
        })?;
        Ok(())
    }

    fn pot(&mut self, pot: Pot) -> &mut Balance {
        match pot {
            Pot::Free => &mut self.free,
            Pot::Reserved => &mut self.reserved,
            Pot::Bonded => &mut self.bonded,
        }
    }
}

/// Moves `amount` between two parts of `who`'s balance, or fails without writing.
fn move_funds(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    from: Pot,
    to: Pot,
    amount: Balance,
) -> Result<()> {
    let mut data = account(overlay, who)?;
    data.take(from, amount)?;
    let target = data.pot(to);
    *target = target.checked_add(amount).ok_or(Error::Overflow)?;
    put(overlay, who, &data);
    Ok(())
}

/// Moves `amount` from free to bonded.
pub fn bond(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    move_funds(overlay, who, Pot::Free, Pot::Bonded, amount)
}

/// Destroys up to `amount` of `who`'s bond (a slash); returns how much was destroyed.
pub fn slash_bonded(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    amount: Balance,
) -> Result<Balance> {
    let mut data = account(overlay, who)?;
    let slashed = amount.min(data.bonded);
    data.bonded -= slashed;
    put(overlay, who, &data);
    let issuance = total_issuance(overlay)?.saturating_sub(slashed);
    TOTAL_ISSUANCE.put(overlay, &issuance);
    Ok(slashed)
}

/// Moves `amount` from bonded to reserved (unbonding, not yet spendable).
pub fn unbond_to_reserved(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    amount: Balance,
) -> Result<()> {
    move_funds(overlay, who, Pot::Bonded, Pot::Reserved, amount)
}

/// Moves `amount` from reserved back to free.
pub fn unreserve(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    move_funds(overlay, who, Pot::Reserved, Pot::Free, amount)
}

/// Moves `amount` from free to reserved (escrows).
pub fn reserve(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    move_funds(overlay, who, Pot::Free, Pot::Reserved, amount)
}

/// Pays `amount` out of `from`'s reserved balance: `burn` of it is destroyed and the
/// rest credited to `to`'s free balance.
pub fn pay_from_reserved(
    overlay: &mut Overlay<'_>,
    from: &AccountId,
    to: &AccountId,
    amount: Balance,
    burn: Balance,
) -> Result<()> {
    if burn > amount {
        return Err(Error::Overflow);
    }
    let mut payer = account(overlay, from)?;
    payer.take(Pot::Reserved, amount)?;
    put(overlay, from, &payer);
    let mut payee = account(overlay, to)?;
    payee.free = payee
        .free
        .checked_add(amount - burn)
        .ok_or(Error::Overflow)?;
    put(overlay, to, &payee);
    let issuance = total_issuance(overlay)?.saturating_sub(burn);
    TOTAL_ISSUANCE.put(overlay, &issuance);
    Ok(())
}

/// The pallet's declarations for the runtime metadata (System.Account is declared by
/// the runtime's System pallet, whose storage prefix it has).
pub fn metadata(state: &impl ReadState) -> Result<neuroshard_support::PalletDecl> {
    use neuroshard_support::constant;
    let p = params(state)?;
    Ok(
        neuroshard_support::PalletDecl::new(Balances::NAME, Balances::INDEX)
            .calls::<neuroshard_primitives::BalancesCall>()
            .events::<Balances>()
            .errors::<Error>()
            .storage(vec![
                TOTAL_ISSUANCE.metadata("Base units in existence."),
                PARAMS.metadata("The pallet's chain-spec parameters."),
            ])
            .constants(vec![
                constant(
                    "ExistentialDeposit",
                    &p.existential_deposit,
                    "Smallest balance a new account may be created with.",
                ),
                constant(
                    "BaseFee",
                    &p.base_fee,
                    "Flat fee of every fee-paying extrinsic.",
                ),
                constant(
                    "ByteFee",
                    &p.byte_fee,
                    "Fee per byte of the encoded extrinsic.",
                ),
            ]),
    )
}

/// Serde helper: balances as decimal strings of base units, so JSON never loses precision.
pub mod decimal_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not a base-unit amount")))
    }
}

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod tests;
