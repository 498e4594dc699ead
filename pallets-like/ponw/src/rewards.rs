//! Work tallies and the epoch payout: `reward = layer_tokens x token_reward / num_layers
//! + uptime_credit x uptime_reward / 1e6`, in exact integer base units, so one token
//! through the full pipeline earns `token_reward` in total, split by the layers each
//! stage ran, and a minute of uptime earns its credit's share of `uptime_reward` (its
//! proven capacity over the chain's reference, see `liveness`).

use crate::{params, Params, Result, CURRENT_EPOCH};
use neuroshard_balances as balances;
use neuroshard_primitives::{AccountId, Balance, Event};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// Work credited to one account in the current epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct WorkTally {
    /// Tokens processed (each stage counts the positions it ran).
    pub tokens: u64,
    /// Tokens x layers run.
    pub layer_tokens: u64,
    pub uptime_minutes: u64,
    /// Uptime credit in millionths of a minute.
    pub uptime_credit: u64,
}

pub const TALLIES: StorageMap<AccountId, WorkTally> = StorageMap::new("Ponw", "Tallies");

/// The reward owed for a tally (saturating; u128 base units cannot realistically overflow).
pub fn reward_for(p: &Params, tally: &WorkTally) -> Balance {
    let layers = Balance::from(p.model.num_layers.max(1));
    let token_part = Balance::from(tally.layer_tokens).saturating_mul(p.token_reward) / layers;
    let uptime_part =
        Balance::from(tally.uptime_credit).saturating_mul(p.uptime_reward) / 1_000_000;
    token_part.saturating_add(uptime_part)
}

/// Applies `update` to `who`'s tally.
pub(crate) fn credit(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    update: impl FnOnce(&mut WorkTally),
) -> Result<()> {
    let mut tally = TALLIES.get(overlay, who)?.unwrap_or_default();
    update(&mut tally);
    TALLIES.insert(overlay, who, &tally);
    Ok(())
}

/// Called at the start of every block: when the block opens a new epoch, pays every
/// tally of the epoch that ended, clears them and prunes replay-protection entries that
/// fell out of the acceptance window.
pub fn on_epoch_start(overlay: &mut Overlay<'_>, ctx: &BlockContext) -> Result<()> {
    let current = CURRENT_EPOCH.get(overlay)?.unwrap_or(0);
    if ctx.epoch <= current {
        return Ok(());
    }
    let p = params(overlay)?;
    for (account, tally) in TALLIES.entries(overlay)? {
        // What the account owes (`owed`) is paid first; `reward` is what is minted.
        let reward = crate::owed::pay_from_reward(overlay, &account, reward_for(&p, &tally))?;
        if reward > 0 {
            balances::mint(overlay, &account, reward)?;
        }
        overlay.deposit_event(Event::RewardPaid {
            account: account.clone(),
            epoch: current,
            tokens: tally.tokens,
            layer_tokens: tally.layer_tokens,
            uptime_minutes: tally.uptime_minutes,
            uptime_credit: tally.uptime_credit,
            training: 0,
            reward,
        });
    }
    TALLIES.clear(overlay);
    CURRENT_EPOCH.put(overlay, &ctx.epoch);
    crate::receipts::prune_sessions(overlay, ctx.epoch, p.receipt_epoch_window)?;
    Ok(())
}

/// Tallies as they stand (for RPC "pending rewards").
pub fn tallies(state: &impl ReadState) -> Result<Vec<(AccountId, WorkTally)>> {
    Ok(TALLIES.entries(state)?)
}
