//! Liveness: the freeloader defence. A registered worker earns one uptime minute for a
//! wall-clock minute only when, in that minute, it both
//! - **shows possession** with a heartbeat: the chunk of one of the layers it serves that
//!   the minute's challenge names for it, with its Merkle path against that layer's chunk
//!   root (so the challenge is scoped to the layers the worker serves), and
//! - **serves**: the validator assigned to probe it ([`prober_of`]) sent it a capacity
//!   probe at the minute's probe instant: prefill-sized jobs (`probe.positions`) on
//!   inputs drawn from the minute's seed, the worker's account and the prober's nonce,
//!   as many as it can finish in the window `probe.window_ms`; the prober re-ran a
//!   sample and reported in `report_liveness` the throughput the finished jobs prove
//!   (layer-positions per second of the window).
//!
//! The minute is credited `min(1, proven / probe.reference_throughput)` of a minute
//! ([`crate::ProbeParams::credit_permill`]), so uptime pays for serving capacity, not for
//! accounts: every probe of a minute fires at one wall-clock instant drawn from its seed
//! ([`probe_instant_ms`]) and covers the same window, so K accounts answering from one
//! machine share what it computes in that window, whatever order they take turns in;
//! their credits add up to at most the machine's own (see docs/PONW-SECURITY.md).
//!
//! The seed of minute `m` is the parent hash of the first block of `m` (unknown until
//! shortly before). A node that does not hold the model cannot show the chunk, and one
//! that holds it but refuses requests fails its probe, so idling online earns nothing.
//! The prober is drawn per (minute, worker) from the validators other than the worker
//! (a sole validator probes itself), so no validator chooses whom it vouches for, and
//! only the drawn one's report counts.

use crate::workers::{worker, WorkerInfo, WORKERS};
use crate::{params, rewards, Error, Result};
use neuroshard_primitives::model_chunks::{challenge_index, challenge_layer, verify_chunk};
use neuroshard_primitives::{blake2_256, AccountId, Event, Hash, LayerRange};
use neuroshard_support::{BlockContext, Overlay, ReadState, StorageValue};
use parity_scale_codec::{Decode, Encode};

/// Most workers one `report_liveness` call may name.
pub const MAX_LIVENESS_ENTRIES: usize = 1024;

/// The current minute and its challenge seed.
pub const MINUTE_SEED: StorageValue<(u64, Hash)> = StorageValue::new("Ponw", "MinuteSeed");

/// What a worker must show in a minute (the proof of possession).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub minute: u64,
    pub seed: Hash,
    /// The layer (one the worker serves) to show a chunk of.
    pub layer: u16,
    /// Index of the chunk of that layer's bytes to show.
    pub chunk_index: u64,
}

/// The outcome of a worker's liveness probe in one minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ProbeRecord {
    pub minute: u64,
    pub answered: bool,
    /// Layer-positions per second the answer proved (0 when it failed).
    pub throughput: u64,
}

/// First millisecond of a minute at which probes may fire, and the width of the window
/// the instant is drawn from: the seed is known a block into the minute, and the
/// reports must be in a block of the same minute.
const PROBE_WINDOW_MS: (u64, u64) = (15_000, 20_000);

/// The wall-clock instant (Unix milliseconds) at which every probe of `minute` fires,
/// for every validator and worker at once, drawn from the minute's `seed`: nobody knows
/// it before the minute's first block, and accounts sharing a machine cannot answer
/// their probes one after another.
pub fn probe_instant_ms(minute: u64, seed: &Hash) -> u64 {
    let digest = blake2_256(&(b"neuroshard/probe/instant", seed).encode());
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest.as_bytes()[..8]);
    minute * 60_000 + PROBE_WINDOW_MS.0 + u64::from_le_bytes(word) % PROBE_WINDOW_MS.1
}

/// One worker's probe in the current minute: who sends it, which shard, the seed of its
/// input (see `neuroshard_inference::probe`), its size and when it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTask {
    pub minute: u64,
    pub worker: AccountId,
    pub prober: AccountId,
    pub layers: LayerRange,
    pub input_seed: Hash,
    /// Positions of the probe's input (`probe.positions`).
    pub positions: u32,
    /// The minute's probe instant ([`probe_instant_ms`]).
    pub fires_at_ms: u64,
}

fn draw(domain: &[u8], seed: &Hash, worker: &AccountId, n: usize) -> usize {
    let digest = blake2_256(&(domain, seed, worker).encode());
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_le_bytes(word) % n as u64) as usize
}

/// The validator that probes `worker` in the minute of `seed`: drawn from the validators
/// other than the worker, or the worker itself when it is the only validator.
pub fn prober_of<'a>(
    seed: &Hash,
    worker: &AccountId,
    validators: &'a [AccountId],
) -> Option<&'a AccountId> {
    let others: Vec<&AccountId> = validators.iter().filter(|v| *v != worker).collect();
    let pool: Vec<&AccountId> = if others.is_empty() {
        validators.iter().collect()
    } else {
        others
    };
    (!pool.is_empty()).then(|| pool[draw(b"neuroshard/probe/prober", seed, worker, pool.len())])
}

/// The shard `who` is probed on in the minute of `seed` and the seed of its probe jobs'
/// inputs (with the prober's nonce, see `neuroshard_inference::probe_window`); `None`
/// for a worker announcing no shard.
pub fn probe_of(seed: &Hash, who: &AccountId, info: &WorkerInfo) -> Option<(LayerRange, Hash)> {
    if info.shards.is_empty() {
        return None;
    }
    let layers = info.shards[draw(b"neuroshard/probe/shard", seed, who, info.shards.len())];
    let input_seed = blake2_256(&(b"neuroshard/probe/input", seed, who).encode());
    Some((layers, input_seed))
}

/// The probes of the current minute assigned to `prober` (from the latest block's state).
pub fn probe_tasks(
    state: &impl ReadState,
    validators: &[AccountId],
    prober: &AccountId,
) -> Result<Vec<ProbeTask>> {
    let Some((minute, seed)) = MINUTE_SEED.get(state)? else {
        return Ok(vec![]);
    };
    let positions = params(state)?.probe.positions;
    let mut tasks = Vec::new();
    for (who, info) in WORKERS.entries(state)? {
        if prober_of(&seed, &who, validators) != Some(prober)
            || info.probe_reported(minute)
            || info.shards.is_empty()
        {
            continue;
        }
        let Some((layers, input_seed)) = probe_of(&seed, &who, &info) else {
            continue;
        };
        tasks.push(ProbeTask {
            minute,
            input_seed,
            worker: who,
            prober: prober.clone(),
            layers,
            positions,
            fires_at_ms: probe_instant_ms(minute, &seed),
        });
    }
    Ok(tasks)
}

/// Records the seed when a block opens a new minute, and reports every registered
/// worker whose closing minute was not credited (`ChallengeMissed`, saying which half
/// of the proof it lacked).
pub(crate) fn record_minute_seed(overlay: &mut Overlay<'_>, ctx: &BlockContext) -> Result<()> {
    let current = MINUTE_SEED.get(overlay)?;
    if current.is_some_and(|(minute, _)| minute == ctx.minute) {
        return Ok(());
    }
    if let Some((closing, _)) = current {
        for (who, info) in WORKERS.entries(overlay)? {
            if info.last_credited_minute != Some(closing) {
                overlay.deposit_event(Event::ChallengeMissed {
                    worker: who,
                    minute: closing,
                    heartbeat: info.last_heartbeat_minute == Some(closing),
                    probed: info.passed_probe(closing),
                });
            }
        }
    }
    MINUTE_SEED.put(overlay, &(ctx.minute, ctx.parent_hash));
    Ok(())
}

/// The possession challenge `worker` must answer now (from the latest block's state), if
/// the current minute has a seed and `worker` is registered for layers of the model.
pub fn challenge(state: &impl ReadState, who: &AccountId) -> Result<Option<Challenge>> {
    let p = params(state)?;
    let (Some((minute, seed)), Some(info)) = (MINUTE_SEED.get(state)?, worker(state, who)?) else {
        return Ok(None);
    };
    let mut served: Vec<u16> = info
        .shards
        .iter()
        .flat_map(|r| r.start..r.end)
        .filter(|l| *l < p.model.num_layers)
        .collect();
    served.sort_unstable();
    served.dedup();
    let Some(layer) = challenge_layer(&seed, who, &served) else {
        return Ok(None);
    };
    let num_chunks = p
        .model
        .layer_chunks
        .get(usize::from(layer))
        .map_or(0, |c| c.num_chunks);
    Ok(Some(Challenge {
        minute,
        seed,
        layer,
        chunk_index: challenge_index(&seed, who, num_chunks),
    }))
}

/// Credits the current minute once both halves of the proof are in: the share of a
/// minute the probe's proven throughput earns.
fn credit_if_proven(overlay: &mut Overlay<'_>, ctx: &BlockContext, who: &AccountId) -> Result<()> {
    let mut info = worker(overlay, who)?.ok_or(Error::NotAWorker)?;
    let minute = ctx.minute;
    let proven = info.last_heartbeat_minute == Some(minute) && info.passed_probe(minute);
    // A minute the worker claimed capacity for is credited by its claim, not twice.
    let claimed = crate::capacity::LAST_CLAIM.get(overlay, who)? == Some(minute);
    if !proven || claimed || info.last_credited_minute == Some(minute) {
        return Ok(());
    }
    let throughput = info.last_probe.map_or(0, |p| p.throughput);
    let credit_permill = params(overlay)?.probe.credit_permill(throughput);
    info.last_credited_minute = Some(minute);
    WORKERS.insert(overlay, who, &info);
    rewards::credit(overlay, who, |t| {
        t.uptime_minutes += 1;
        t.uptime_credit += u64::from(credit_permill);
    })?;
    overlay.deposit_event(Event::UptimeCredited {
        worker: who.clone(),
        epoch: ctx.epoch,
        minute,
        credit_permill,
    });
    Ok(())
}

/// `heartbeat`: a registered worker shows the model chunk the current minute's challenge
/// names (the possession half of the minute's proof).
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
        return Err(Error::HeartbeatAlreadyAccepted(minute));
    }
    let challenge = challenge(overlay, who)?
        .filter(|c| c.minute == minute)
        .ok_or(Error::NoChallenge(minute))?;
    let p = params(overlay)?;
    let layer = p
        .model
        .layer_chunks
        .get(usize::from(challenge.layer))
        .ok_or(Error::WrongChunk)?;
    if !verify_chunk(
        &layer.root,
        layer.num_chunks,
        p.model.chunk_size,
        challenge.chunk_index,
        chunk,
        proof,
    ) {
        return Err(Error::WrongChunk);
    }
    info.last_heartbeat_minute = Some(minute);
    WORKERS.insert(overlay, who, &info);
    credit_if_proven(overlay, ctx, who)
}

/// `report_liveness`: validator `who` reports the probes of the current minute it was
/// drawn for, each answered one with the throughput it proved. Entries it was not drawn
/// for, unknown workers and workers already probed this minute are skipped; a report
/// that records nothing is refused. An answered entry proving no throughput counts as
/// failed.
pub fn report_liveness(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    validators: &[AccountId],
    minute: u64,
    answered: &[(AccountId, u64)],
    failed: &[AccountId],
) -> Result<()> {
    if !validators.contains(who) {
        return Err(Error::NotAValidator);
    }
    if minute != ctx.minute {
        return Err(Error::WrongMinute {
            claimed: minute,
            current: ctx.minute,
        });
    }
    let count = answered.len() + failed.len();
    if count > MAX_LIVENESS_ENTRIES {
        return Err(Error::TooManyLivenessEntries { count });
    }
    let seed = MINUTE_SEED
        .get(overlay)?
        .filter(|(m, _)| *m == minute)
        .ok_or(Error::NoChallenge(minute))?
        .1;
    let entries = answered
        .iter()
        .map(|(w, throughput)| (w, *throughput))
        .chain(failed.iter().map(|w| (w, 0)));
    let mut recorded = 0;
    for (target, throughput) in entries {
        let ok = throughput > 0;
        let Some(mut info) = worker(overlay, target)? else {
            continue;
        };
        if prober_of(&seed, target, validators) != Some(who) || info.probe_reported(minute) {
            continue;
        }
        info.last_probe = Some(ProbeRecord {
            minute,
            answered: ok,
            throughput,
        });
        WORKERS.insert(overlay, target, &info);
        overlay.deposit_event(Event::LivenessProbed {
            worker: target.clone(),
            minute,
            prober: who.clone(),
            answered: ok,
            throughput,
        });
        credit_if_proven(overlay, ctx, target)?;
        recorded += 1;
    }
    if recorded == 0 {
        return Err(Error::NothingToReport);
    }
    Ok(())
}
