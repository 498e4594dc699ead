//! Worker registry and liveness: a worker announces the model shards it serves, and
//! earns one uptime minute per wall-clock minute in which it answers that minute's
//! proof-of-possession challenge. The challenge seed of minute `m` is the parent hash of
//! the first block of `m` (unknown until shortly before); with the worker's account it
//! names one model-file chunk, which the worker must show with its Merkle path. A node
//! that does not hold the model cannot answer, so idling online earns nothing.
//!
//! Registering reserves the chain's `worker_bond` from the worker's free balance: what a
//! failed spot check slashes (see [`crate::spot_checks`]). Deregistering releases it once
//! no receipt of the worker awaits a check.

use crate::{params, rewards, Error, Result};
use neuroshard_balances as balances;
use neuroshard_primitives::model_chunks::{challenge_index, verify_chunk};
use neuroshard_primitives::{AccountId, Balance, BlockNumber, Event, Hash, LayerRange};
use neuroshard_support::StorageValue;
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageMap};
use parity_scale_codec::{Decode, Encode};

/// What a worker announced.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WorkerInfo {
    pub model: Hash,
    pub shards: Vec<LayerRange>,
    pub registered_at: BlockNumber,
    /// Last minute an uptime credit was given for.
    pub last_heartbeat_minute: Option<u64>,
    /// Reserved from the worker's balance while it is registered; slashable.
    pub bond: Balance,
}

impl WorkerInfo {
    /// True when the worker announced a shard covering `layers`.
    pub fn serves(&self, layers: &LayerRange) -> bool {
        self.shards.iter().any(|s| s.contains(layers))
    }
}

pub const WORKERS: StorageMap<AccountId, WorkerInfo> = StorageMap::new("Ponw", "Workers");
/// The current minute and its challenge seed.
pub const MINUTE_SEED: StorageValue<(u64, Hash)> = StorageValue::new("Ponw", "MinuteSeed");

/// What a worker must answer in a minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub minute: u64,
    pub seed: Hash,
    /// Index of the model-file chunk to show.
    pub chunk_index: u64,
}

/// Records the seed when a block opens a new minute, and reports every registered
/// worker that left the closing minute's challenge unanswered (`ChallengeMissed`).
pub(crate) fn record_minute_seed(overlay: &mut Overlay<'_>, ctx: &BlockContext) -> Result<()> {
    let current = MINUTE_SEED.get(overlay)?;
    if current.is_some_and(|(minute, _)| minute == ctx.minute) {
        return Ok(());
    }
    if let Some((closing, _)) = current {
        for (who, info) in WORKERS.entries(overlay)? {
            if info.last_heartbeat_minute != Some(closing) {
                overlay.deposit_event(Event::ChallengeMissed {
                    worker: who,
                    minute: closing,
                });
            }
        }
    }
    MINUTE_SEED.put(overlay, &(ctx.minute, ctx.parent_hash));
    Ok(())
}

/// The challenge `worker` must answer now (from the latest block's state), if the
/// current minute has a seed.
pub fn challenge(state: &impl ReadState, worker: &AccountId) -> Result<Option<Challenge>> {
    let p = params(state)?;
    Ok(MINUTE_SEED.get(state)?.map(|(minute, seed)| Challenge {
        minute,
        seed,
        chunk_index: challenge_index(&seed, worker, p.model.num_chunks),
    }))
}

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
    let last_heartbeat_minute = previous.as_ref().and_then(|w| w.last_heartbeat_minute);
    let bonded = previous.map_or(0, |w| w.bond);
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
            last_heartbeat_minute,
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

/// `heartbeat`: credits the current minute of uptime to a registered worker that shows
/// the model chunk the minute's challenge names.
pub fn heartbeat(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    minute: u64,
    chunk: &[u8],
    proof: &[Option<Hash>],
) -> Result<()> {
    let mut info = worker(overlay, who)?.ok_or(Error::NotAWorker)?;
    if minute != ctx.minute {
        return Err(Error::WrongMinute {
            claimed: minute,
            current: ctx.minute,
        });
    }
    if info.last_heartbeat_minute.is_some_and(|m| m >= minute) {
        return Err(Error::MinuteAlreadyCredited(minute));
    }
    let challenge = challenge(overlay, who)?
        .filter(|c| c.minute == minute)
        .ok_or(Error::NoChallenge(minute))?;
    let p = params(overlay)?;
    let m = &p.model;
    if !verify_chunk(
        &m.chunk_root,
        m.num_chunks,
        m.chunk_size,
        challenge.chunk_index,
        chunk,
        proof,
    ) {
        return Err(Error::WrongChunk);
    }
    info.last_heartbeat_minute = Some(minute);
    WORKERS.insert(overlay, who, &info);
    rewards::credit(overlay, who, |t| t.uptime_minutes += 1)?;
    overlay.deposit_event(Event::UptimeCredited {
        worker: who.clone(),
        epoch: ctx.epoch,
        minute,
    });
    Ok(())
}
