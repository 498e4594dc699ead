//! Worker registry: a worker announces the model shards it serves (and then earns uptime
//! only for the minutes it proves, see [`crate::liveness`]).
//!
//! Registering reserves the chain's `worker_bond` from the worker's free balance: what a
//! failed spot check slashes (see [`crate::spot_checks`]). Deregistering releases it once
//! no receipt of the worker awaits a check.

use crate::liveness::ProbeRecord;
use crate::{params, Error, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::{AccountId, Balance, BlockNumber, Event, Hash, LayerRange};
use neuroshard_support::{Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// What a worker announced.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
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
            == Some(ProbeRecord {
                minute,
                answered: true,
            })
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

/// `deregister_worker`: stops serving and releases the bond (work already credited is
/// still paid). Refused while a receipt of the worker awaits a spot check.
pub fn deregister_worker(overlay: &mut Overlay<'_>, who: &AccountId) -> Result<()> {
    let info = worker(overlay, who)?.ok_or(Error::NotAWorker)?;
    if crate::spot_checks::has_pending(overlay, who)? {
        return Err(Error::ChecksPending);
    }
    remove(overlay, who, info.bond)
}

/// Removes a worker and releases what is left of its bond.
pub(crate) fn remove(overlay: &mut Overlay<'_>, who: &AccountId, bond: Balance) -> Result<()> {
    if bond > 0 {
        balances::unreserve(overlay, who, bond)?;
    }
    WORKERS.remove(overlay, who);
    overlay.deposit_event(Event::WorkerDeregistered {
        worker: who.clone(),
    });
    Ok(())
}
