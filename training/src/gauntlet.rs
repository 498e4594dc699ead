//! Verifying contributions before they are paid, in the style of Templar's Gauntlet.
//!
//! Every (worker, round) of a shard gets its training data from a seed
//! ([`assignment`]): `count` windows of the shared training pool, drawn from the
//! worker, the shard, the round and the adapter version the round starts from, so no
//! one chooses its data and anyone can recompute it. The worker trains on those windows
//! and claims its loss on the first [`PROBE_WINDOWS`] of them before and after its
//! inner loop. A validator replays exactly that ([`replay`]): the loss of the round's
//! base adapter on the probe windows, and of the base adapter minus the worker's
//! pseudo-gradient (the worker's local adapter). [`judge`] turns that into the
//! verdict: claimed losses the replay contradicts are `Contradicted` (slashed),
//! a pseudo-gradient that does not lower the loss earns nothing, nor does one that is
//! a near-copy ([`near_copy`]) of a pseudo-gradient recorded earlier in the round.
//!
//! Cost: a replay is two forward passes over one window; the worker's inner loop is
//! `steps x batch` forward and backward passes plus its own two probe evaluations. With
//! the node's hyper-parameters (4 x 2) and three contributors, verifying a round costs
//! 7 window passes against 78 of training, 9.0% ([`verification_share`]).

use crate::dataset::Dataset;
use crate::diloco::{evaluate_windows, InnerConfig};
use crate::error::Result;
use crate::lora::AdapterLayout;
use crate::model::FrozenModel;
use neuroshard_primitives::{
    blake2_256, fixed_to_loss, loss_to_fixed, AccountId, AdapterOutcome, ContributionCheck,
    ContributionOutcome, Hash, LayerRange,
};
use parity_scale_codec::Encode;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Windows a worker's claimed losses (and the validator's replay) are measured on.
pub const PROBE_WINDOWS: usize = 1;
/// Cosine similarity above which a pseudo-gradient counts as a copy of an earlier one.
pub const COPY_COSINE: f32 = 0.999;
/// Nats a new adapter version's held-out loss may exceed the adopted one's and still be
/// adopted (one window of text is a noisy measure; poison moves it by far more).
pub const HELD_OUT_TOLERANCE: f32 = 0.05;
/// A claimed loss agrees with the replay when within this many nats of it (the replay
/// runs the same kernels on the same inputs; this only absorbs thread-order rounding).
pub const LOSS_TOLERANCE: f32 = 2e-3;

/// The `count` windows (of a pool of `pool`) the worker trains on in `round` of
/// `layers` of `model`, starting from adapter `base`; the first [`PROBE_WINDOWS`] are
/// its probe windows. Distinct while the pool is large enough, then repeating.
pub fn assignment(
    worker: &AccountId,
    (model, layers): (&Hash, LayerRange),
    round: u32,
    base: &Hash,
    pool: usize,
    count: usize,
) -> Vec<usize> {
    let digest = blake2_256(
        &(
            b"neuroshard/training-data",
            worker,
            model,
            layers,
            round,
            base,
        )
            .encode(),
    );
    let mut seed = [0u8; 32];
    seed.copy_from_slice(digest.as_bytes());
    let mut rng = StdRng::from_seed(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count && pool > 0 {
        let mut all: Vec<usize> = (0..pool).collect();
        all.shuffle(&mut rng);
        out.extend(all.into_iter().take(count - out.len()));
    }
    out
}

/// Windows assigned per round under `inner` (one per inner-loop sample).
pub fn assigned_windows(inner: &InnerConfig) -> usize {
    (inner.steps * inner.batch.max(1)).max(PROBE_WINDOWS)
}

/// Share of the contributors' training compute a verification costs, counting window
/// forward passes (a backward pass as two): a replay of 2 x [`PROBE_WINDOWS`] windows
/// per contributor plus `held_out` windows for the new adapter version (the adopted
/// version's held-out loss is known from its own verification), against each
/// contributor's inner loop (`steps x batch` forward and backward) and its two probe
/// evaluations.
pub fn verification_share(inner: &InnerConfig, contributors: usize, held_out: usize) -> f64 {
    let train = (3 * inner.steps * inner.batch.max(1) + 2 * PROBE_WINDOWS) * contributors;
    let verify = 2 * PROBE_WINDOWS * contributors + held_out;
    verify as f64 / train.max(1) as f64
}

/// Losses the validator measured on a contribution's probe windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replay {
    pub loss_before: f32,
    pub loss_after: f32,
}

/// The loss of `theta_base` and of `theta_base - pseudo_gradient` on `windows` of
/// `data`.
pub fn replay(
    model: &FrozenModel,
    layout: &AdapterLayout,
    theta_base: &[f32],
    pseudo_gradient: &[f32],
    (data, windows): (&Dataset, &[usize]),
) -> Result<Replay> {
    let after: Vec<f32> = theta_base
        .iter()
        .zip(pseudo_gradient)
        .map(|(t, g)| t - g)
        .collect();
    let batch = windows.len();
    Ok(Replay {
        loss_before: evaluate_windows(model, layout, theta_base, data, windows, batch)?,
        loss_after: evaluate_windows(model, layout, &after, data, windows, batch)?,
    })
}

/// The verdict on a contribution that claimed `claimed` (micro-nats, before and after)
/// and replayed as `replay`; `copied` when it is a near-copy of an earlier one.
pub fn judge(claimed: (u32, u32), replay: &Replay, copied: bool) -> ContributionOutcome {
    let off = |claim: u32, measured: f32| {
        !measured.is_finite() || (fixed_to_loss(claim) - measured).abs() > LOSS_TOLERANCE
    };
    if off(claimed.0, replay.loss_before) || off(claimed.1, replay.loss_after) {
        ContributionOutcome::Contradicted
    } else if copied {
        ContributionOutcome::Copied
    } else if replay.loss_after < replay.loss_before {
        ContributionOutcome::Improved
    } else {
        ContributionOutcome::NoImprovement
    }
}

/// The verdict on a new adapter version from its held-out loss (`None`: no snapshot
/// hashing to the recorded version) and the adopted version's (`None`: its snapshot is
/// gone, so nothing shows the new one is not worse).
pub fn judge_adapter(new: Option<f32>, adopted: Option<f32>) -> AdapterOutcome {
    match (new, adopted) {
        (Some(new), Some(old)) if new.is_finite() && new <= old + HELD_OUT_TOLERANCE => {
            AdapterOutcome::Adopted
        }
        (Some(_), Some(_)) => AdapterOutcome::Worse,
        _ => AdapterOutcome::Unavailable,
    }
}

/// True when `a` and `b` point the same way (cosine above [`COPY_COSINE`]).
pub fn near_copy(a: &[f32], b: &[f32]) -> bool {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    na > 0.0 && nb > 0.0 && dot / (na * nb) > f64::from(COPY_COSINE)
}

/// One recorded receipt of a round, as the validator sees it.
pub struct Candidate {
    pub worker: AccountId,
    /// Claimed loss before and after, micro-nats.
    pub claimed: (u32, u32),
    /// The decoded pseudo-gradient (`None`: no peer served a payload matching the
    /// receipt).
    pub pseudo_gradient: Option<Vec<f32>>,
}

/// What a round's contributions are verified against: the frozen model of the shard,
/// its adapter layout, the shared training pool, the inner-loop configuration, and the
/// round (`model`, `layers`, `round`, base adapter version and its values).
pub struct RoundContext<'a> {
    pub model: &'a FrozenModel,
    pub layout: &'a AdapterLayout,
    pub pool: &'a Dataset,
    pub inner: &'a InnerConfig,
    pub shard: (Hash, LayerRange),
    pub round: u32,
    pub base: Hash,
    pub theta_base: &'a [f32],
}

/// The verdict on every candidate, in order: unavailable payloads, then replays on each
/// worker's probe windows, copies judged against the candidates before them.
pub fn verify_contributions(
    ctx: &RoundContext<'_>,
    candidates: &[Candidate],
) -> Result<Vec<ContributionCheck>> {
    let count = assigned_windows(ctx.inner);
    let mut checks = Vec::with_capacity(candidates.len());
    for (i, c) in candidates.iter().enumerate() {
        let Some(g) = &c.pseudo_gradient else {
            checks.push(ContributionCheck {
                worker: c.worker.clone(),
                outcome: ContributionOutcome::Unavailable,
                loss_before: 0,
                loss_after: 0,
            });
            continue;
        };
        let (model, layers) = ctx.shard;
        let windows = assignment(
            &c.worker,
            (&model, layers),
            ctx.round,
            &ctx.base,
            ctx.pool.len(),
            count,
        );
        let probe = &windows[..PROBE_WINDOWS.min(windows.len())];
        let r = replay(ctx.model, ctx.layout, ctx.theta_base, g, (ctx.pool, probe))?;
        let copied = candidates[..i]
            .iter()
            .filter_map(|e| e.pseudo_gradient.as_deref())
            .any(|earlier| near_copy(earlier, g));
        checks.push(ContributionCheck {
            worker: c.worker.clone(),
            outcome: judge(c.claimed, &r, copied),
            loss_before: loss_to_fixed(r.loss_before),
            loss_after: loss_to_fixed(r.loss_after),
        });
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::loss_to_fixed;

    fn account(byte: u8) -> AccountId {
        AccountId::from([byte; 32])
    }

    #[test]
    fn assignments_differ_by_worker_and_round_and_are_reproducible() {
        let (model, layers) = (blake2_256(b"m"), LayerRange::new(0, 2).unwrap());
        let base = blake2_256(b"v0");
        let a = assignment(&account(1), (&model, layers), 0, &base, 36, 8);
        assert_eq!(
            a,
            assignment(&account(1), (&model, layers), 0, &base, 36, 8)
        );
        assert_ne!(
            a,
            assignment(&account(2), (&model, layers), 0, &base, 36, 8)
        );
        assert_ne!(
            a,
            assignment(&account(1), (&model, layers), 1, &base, 36, 8)
        );
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "distinct windows");
        assert!(a.iter().all(|w| *w < 36));
        assert_eq!(
            assignment(&account(1), (&model, layers), 0, &base, 3, 8).len(),
            8
        );
        assert!(assignment(&account(1), (&model, layers), 0, &base, 0, 8).is_empty());
    }

    #[test]
    fn verdicts() {
        let r = Replay {
            loss_before: 3.0,
            loss_after: 2.5,
        };
        let honest = (loss_to_fixed(3.0), loss_to_fixed(2.5));
        assert_eq!(judge(honest, &r, false), ContributionOutcome::Improved);
        assert_eq!(judge(honest, &r, true), ContributionOutcome::Copied);
        let bragging = (loss_to_fixed(3.0), loss_to_fixed(2.0));
        assert_eq!(
            judge(bragging, &r, false),
            ContributionOutcome::Contradicted
        );
        let worse = Replay {
            loss_before: 3.0,
            loss_after: 3.1,
        };
        let claim = (loss_to_fixed(3.0), loss_to_fixed(3.1));
        assert_eq!(
            judge(claim, &worse, false),
            ContributionOutcome::NoImprovement
        );
        let nan = Replay {
            loss_before: f32::NAN,
            loss_after: 1.0,
        };
        assert_eq!(
            judge(honest, &nan, false),
            ContributionOutcome::Contradicted
        );
    }

    #[test]
    fn a_poisoned_or_withheld_adapter_is_not_adopted() {
        assert_eq!(judge_adapter(Some(3.0), Some(3.1)), AdapterOutcome::Adopted);
        assert_eq!(
            judge_adapter(Some(3.12), Some(3.1)),
            AdapterOutcome::Adopted
        );
        assert_eq!(judge_adapter(Some(4.0), Some(3.1)), AdapterOutcome::Worse);
        assert_eq!(
            judge_adapter(Some(f32::NAN), Some(3.1)),
            AdapterOutcome::Worse
        );
        assert_eq!(judge_adapter(None, Some(3.1)), AdapterOutcome::Unavailable);
        assert_eq!(judge_adapter(Some(3.0), None), AdapterOutcome::Unavailable);
    }

    #[test]
    fn near_copies_are_found_and_distinct_updates_are_not() {
        let a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let scaled: Vec<f32> = a.iter().map(|v| v * 1.01 + 1e-6).collect();
        let other: Vec<f32> = (0..100).map(|i| (i as f32 * 0.91).cos()).collect();
        assert!(near_copy(&a, &scaled));
        assert!(!near_copy(&a, &other));
        assert!(!near_copy(&a, &vec![0.0; 100]));
    }

    #[test]
    fn verification_costs_under_a_tenth_of_training() {
        // The node's hyper-parameters: 4 steps of 2 windows; three contributors; one
        // held-out window for the adapter.
        let inner = InnerConfig {
            steps: 4,
            batch: 2,
            ..InnerConfig::default()
        };
        let share = verification_share(&inner, 3, 1);
        assert!(share <= 0.10, "{share}");
    }
}
