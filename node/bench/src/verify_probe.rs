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
    run_window(&exec, (&seed, &seed), positions, Duration::from_millis(200));
    let jobs = run_window(&exec, (&seed, &nonce), positions, window);
    anyhow::ensure!(!jobs.is_empty(), "no probe job finished in the window");
    let wanted = (jobs.len() as u64 * u64::from(params.sample_permill)).div_ceil(1_000_000);
    let samples = (wanted as usize).max(MIN_SAMPLES).min(jobs.len());
    let started = Instant::now();
    for (job, _) in jobs.iter().take(samples) {
        expected_commitment(&exec, (&seed, &nonce), *job, positions)?;
    }
    let rerun = started.elapsed();
    let work = jobs.len() as u64 * u64::from(params.positions) * all.len() as u64;
    Ok(ProbeCost {
        params: params.clone(),
        jobs: jobs.len(),
        samples,
        rerun,
        throughput: work * 1000 / u64::from(params.window_ms.max(1)),
    })
}
