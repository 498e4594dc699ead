//! `bench verify`'s cost of capacity probes (issue 21): what a minute's probe costs the
//! probed worker (its window of full compute) and its prober (re-running the sampled
//! jobs), as shares of a minute of the worker's serving compute, with the chain spec's
//! `ponw.probe` parameters on the real model, all its layers as one shard.

use neuroshard_inference::executor::ShardExecutor;
use neuroshard_inference::probe_window::{expected_commitment, run_window};
use neuroshard_inference::weights::ModelWeights;
use neuroshard_primitives::Hash;
use neuroshard_runtime::ponw::ProbeParams;
use std::fmt;
use std::time::{Duration, Instant};

/// Fewest jobs of an answer the prober re-runs (as `neuroshard_verifier::prober`).
const MIN_SAMPLES: usize = 2;
/// Accounts whose windows run at once on one machine in the Sybil comparison.
const SYBILS: usize = 8;
/// Rounds of the comparison (one window alone, then the accounts' windows at once).
const SPLIT_ROUNDS: usize = 3;

/// One measured probe.
#[derive(Clone, Debug)]
pub struct ProbeCost {
    pub params: ProbeParams,
    /// Jobs finished in the window.
    pub jobs: usize,
    /// The prober's re-runs of the sampled jobs.
    pub samples: usize,
    pub rerun: Duration,
    /// Layer-positions per second the window proved, and the minute's credit for it.
    pub throughput: u64,
    /// Per round: jobs one account's window finished alone, and the total of
    /// [`SYBILS`] accounts' windows run at once on the same cores.
    pub split: Vec<(usize, usize)>,
}

impl ProbeCost {
    /// The worker's compute spent on probes per minute (its window), as a share.
    pub fn probe_share(&self) -> f64 {
        f64::from(self.params.window_ms) / 60_000.0
    }

    /// The prober's re-runs per probed worker per minute, as a share of the worker's
    /// minute of compute (they run on a machine like it).
    pub fn rerun_share(&self) -> f64 {
        self.rerun.as_secs_f64() / 60.0
    }

    /// What [`SYBILS`] accounts' windows at once prove, over what one proves alone, on
    /// the same machine (the bound: at most 1.1).
    pub fn split_ratio(&self) -> f64 {
        let alone: usize = self.split.iter().map(|r| r.0).sum();
        let many: usize = self.split.iter().map(|r| r.1).sum();
        many as f64 / alone.max(1) as f64
    }
}

impl fmt::Display for ProbeCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "capacity probes ({} ms window, {}-position jobs): {} jobs, {} layer-positions/s \
             (credit {:.3} of a minute at the reference {})",
            self.params.window_ms,
            self.params.positions,
            self.jobs,
            self.throughput,
            f64::from(self.params.credit_permill(self.throughput)) / 1e6,
            self.params.reference_throughput
        )?;
        write!(
            f,
            "  probe {:.2}% + re-run of {} jobs {:.3}% of a minute's serving compute",
            self.probe_share() * 100.0,
            self.samples,
            self.rerun_share() * 100.0
        )?;
        write!(
            f,
            "\n  {SYBILS} accounts' windows at once on this machine / one alone: {:.2}x \
             (jobs per round {:?}; goal <= 1.1)",
            self.split_ratio(),
            self.split
        )
    }
}

/// Runs one probe window on `weights` (every layer) and re-runs its sample.
pub fn measure(weights: &ModelWeights, params: &ProbeParams) -> anyhow::Result<ProbeCost> {
    let all = 0..weights.config.num_layers;
    let exec = ShardExecutor::new(weights.slice(all.clone())?)?;
    let (seed, nonce) = (Hash::repeat_byte(7), Hash::repeat_byte(9));
    let positions = params.positions as usize;
    let window = Duration::from_millis(u64::from(params.window_ms));
    // Warm-up, then the measured window.
    run_window(
        &exec,
        (&seed, &seed),
        positions,
        Duration::from_millis(200),
        None,
    );
    let jobs = run_window(&exec, (&seed, &nonce), positions, window, None);
    anyhow::ensure!(!jobs.is_empty(), "no probe job finished in the window");
    let wanted = (jobs.len() as u64 * u64::from(params.sample_permill)).div_ceil(1_000_000);
    let samples = (wanted as usize).max(MIN_SAMPLES).min(jobs.len());
    let started = Instant::now();
    for (job, _) in jobs.iter().take(samples) {
        expected_commitment(&exec, (&seed, &nonce), *job, positions)?;
    }
    let rerun = started.elapsed();
    let split = (0..SPLIT_ROUNDS)
        .map(|_| {
            let alone = run_window(&exec, (&seed, &nonce), positions, window, None).len();
            let seeds: Vec<Hash> = (0..SYBILS as u8).map(Hash::repeat_byte).collect();
            let many = std::thread::scope(|scope| {
                let runs: Vec<_> = seeds
                    .iter()
                    .map(|s| {
                        scope.spawn(|| run_window(&exec, (s, &nonce), positions, window, None))
                    })
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().map_or(0, |jobs| jobs.len()))
                    .sum()
            });
            (alone, many)
        })
        .collect();
    let work = jobs.len() as u64 * u64::from(params.positions) * all.len() as u64;
    Ok(ProbeCost {
        params: params.clone(),
        jobs: jobs.len(),
        samples,
        rerun,
        throughput: work * 1000 / u64::from(params.window_ms.max(1)),
        split,
    })
}
