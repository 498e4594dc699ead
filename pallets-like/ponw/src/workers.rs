//! Worker registry: a worker announces the model shards it serves (and then earns uptime
//! only for the minutes it proves, see [`crate::liveness`]).
//!
//! Registering reserves the chain's `worker_bond` from the worker's free balance: what a
//! failed spot check slashes (see [`crate::spot_checks`]) and what caps the worker's
//! unsettled work (see [`crate::settlement`]); `bond_more` adds to it, so a busy worker
//! can answer for more. Deregistering releases it once nothing of the worker is
//! unsettled; until then it stays reserved and slashable.

use crate::liveness::ProbeRecord;
use crate::{params, Error, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{AccountId, Balance, BlockNumber, Event, Hash, LayerRange};
use neuroshard_support::{Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// What a worker announced.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct WorkerInfo {
    pub model: Hash,
    pub shards: Vec<LayerRange>,
    pub registered_at: BlockNumber,
    /// Last minute the worker showed the model chunk of (its heartbeat).
    pub last_heartbeat_minute: Option<u64>,
    /// Its last liveness probe and whether it answered.
    pub last_probe: Option<ProbeRecord>,
    /// Last minute an uptime credit was given for.
    pub last_credited_minute: Option<u64>,
    /// Reserved from the worker's balance while it is registered; slashable.
    pub bond: Balance,
}

impl WorkerInfo {
    /// True when the worker's liveness probe of `minute` was reported (either way).
    pub fn probe_reported(&self, minute: u64) -> bool {
        self.last_probe.is_some_and(|p| p.minute >= minute)
    }

    /// True when the worker answered its liveness probe of `minute`.
    pub fn passed_probe(&self, minute: u64) -> bool {
        self.last_probe
            .is_some_and(|p| p.minute == minute && p.answered)
    }

    /// True when the worker announced a shard covering `layers`.
    pub fn serves(&self, layers: &LayerRange) -> bool {
        self.shards.iter().any(|s| s.contains(layers))
    }
}

pub const WORKERS: StorageMap<AccountId, WorkerInfo> = StorageMap::new("Ponw", "Workers");
pub fn worker(state: &impl ReadState, who: &AccountId) -> Result<Option<WorkerInfo>> {
    Ok(WORKERS.get(state, who)?)
}

/// `register_worker`: (re)announces the shards `who` serves.
pub fn register_worker(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    who: &AccountId,
    model: Hash,
    mut shards: Vec<LayerRange>,
) -> Result<()> {
    let p = params(overlay)?;
    if model != p.model.hash {
        return Err(Error::WrongModel(model));
    }
    shards.sort();
    let bad = shards.is_empty()
        || shards.len() > p.max_shards_per_worker as usize
        || shards
            .iter()
            .any(|s| s.is_empty() || s.end > p.model.num_layers)
        || shards.windows(2).any(|w| w[0].end > w[1].start);
    if bad {
        return Err(Error::BadShards {
            num_layers: p.model.num_layers,
        });
    }
    let previous = worker(overlay, who)?;
    let bonded = previous.as_ref().map_or(0, |w| w.bond);
    if bonded < p.worker_bond {
        balances::reserve(overlay, who, p.worker_bond - bonded)?;
    }
    WORKERS.insert(
        overlay,
        who,
        &WorkerInfo {
            model,
            shards: shards.clone(),
            registered_at: now,
            last_heartbeat_minute: previous.as_ref().and_then(|w| w.last_heartbeat_minute),
            last_probe: previous.as_ref().and_then(|w| w.last_probe),
            last_credited_minute: previous.as_ref().and_then(|w| w.last_credited_minute),
            bond: bonded.max(p.worker_bond),
        },
    );
    overlay.deposit_event(Event::WorkerRegistered {
        worker: who.clone(),
        model,
        shards,
    });
    Ok(())
}

/// `bond_more`: reserves `amount` more of `who`'s free balance as its worker bond.
pub fn bond_more(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<()> {
    let mut info = worker(overlay, who)?.ok_or(Error::NotAWorker)?;
    if amount == 0 {
        return Err(Error::ZeroAmount);
    }
    balances::reserve(overlay, who, amount)?;
    info.bond = info.bond.saturating_add(amount);
    WORKERS.insert(overlay, who, &info);
    overlay.deposit_event(Event::WorkerBondIncreased {
        worker: who.clone(),
        amount,
        bond: info.bond,
    });
    Ok(())
}

/// `deregister_worker`: stops serving. The bond is released at once when nothing of
/// the worker is unsettled; otherwise it is retired (see [`RETIRED_BONDS`]) until its
/// last receipt settles or check is decided.
pub fn deregister_worker(overlay: &mut Overlay<'_>, who: &AccountId) -> Result<()> {
    let info = worker(overlay, who)?.ok_or(Error::NotAWorker)?;
    remove(overlay, who, info.bond)
}

/// The rest of the bond of a worker no longer registered, still reserved and slashable
/// while it has unsettled receipts or pending checks.
pub const RETIRED_BONDS: StorageMap<AccountId, Balance> = StorageMap::new("Ponw", "RetiredBonds");

pub fn retired_bond(state: &impl ReadState, who: &AccountId) -> Result<Balance> {
    Ok(RETIRED_BONDS.get(state, who)?.unwrap_or(0))
}

/// Deregisters a worker: its bond is released, or retired while it has unsettled work.
pub(crate) fn remove(overlay: &mut Overlay<'_>, who: &AccountId, bond: Balance) -> Result<()> {
    WORKERS.remove(overlay, who);
    if bond > 0 {
        let retired = retired_bond(overlay, who)?.saturating_add(bond);
        RETIRED_BONDS.insert(overlay, who, &retired);
    }
    overlay.deposit_event(Event::WorkerDeregistered {
        worker: who.clone(),
    });
    release_retired_bond(overlay, who)
}

/// Releases `who`'s retired bond once nothing of it is unsettled, less what it owes
/// (`crate::owed`).
pub(crate) fn release_retired_bond(overlay: &mut Overlay<'_>, who: &AccountId) -> Result<()> {
    let retired = retired_bond(overlay, who)?;
    if retired == 0 || crate::settlement::has_unsettled(overlay, who)? {
        return Ok(());
    }
    // What it owes of hidden checks is paid from the bond before the rest is freed.
    let paid = crate::owed::pay_from_bond(overlay, who, retired)?;
    balances::unreserve(overlay, who, retired - paid)?;
    RETIRED_BONDS.remove(overlay, who);
    Ok(())
}

/// Takes up to `amount` from `who`'s bond (registered first, then retired) for a slash
/// (the caller moves the reserved funds); deregisters it when the registered bond falls
/// below the minimum. Returns what was taken.
pub(crate) fn take_bond(
    overlay: &mut Overlay<'_>,
    who: &AccountId,
    amount: Balance,
) -> Result<Balance> {
    let minimum = params(overlay)?.worker_bond;
    let mut taken = 0;
    if let Some(mut info) = worker(overlay, who)? {
        taken = amount.min(info.bond);
        info.bond -= taken;
        WORKERS.insert(overlay, who, &info);
    }
    taken += take_retired(overlay, who, amount - taken)?;
    if let Some(info) = worker(overlay, who)?.filter(|w| w.bond < minimum) {
        // Deregister; what is left is retired (slashable until everything is decided).
        remove(overlay, who, info.bond)?;
    }
    Ok(taken)
}

fn take_retired(overlay: &mut Overlay<'_>, who: &AccountId, amount: Balance) -> Result<Balance> {
    let retired = retired_bond(overlay, who)?;
    let taken = amount.min(retired);
    if taken > 0 {
        if retired == taken {
            RETIRED_BONDS.remove(overlay, who);
        } else {
            RETIRED_BONDS.insert(overlay, who, &(retired - taken));
        }
    }
    Ok(taken)
}
