//! `neuroshard bench verify`: what spot checks cost and what they catch, on the real
//! model through three in-process shards (0-10, 10-20, 20-30).
//!
//! - Cost: greedy generations are served (decode time measured), then every receipt is
//!   re-run the way a validator does (`spot_check::check_work`: one prefill over the committed
//!   inputs). Re-running one receipt costs `replay / serve` of serving it; at the chain's
//!   sampling rate `s` the validators spend `s x replay / serve` of the serving compute.
//! - Detection: the middle shard cheats in each of the ways of
//!   [`verify_serve::CheatMode`]; `d(x)` is the share of its receipts a check rejects. A
//!   drawn receipt is caught with probability `d(x)`, so each receipt is caught with
//!   `p = s x d(x)` and a cheater survives `n` receipts with `(1 - p)^n`.
//! - False positives: every honest receipt must pass, both for a validator on the same
//!   machine and for one whose arithmetic differs in its last bits
//!   ([`verify_serve::perturbed`]); `--honest-receipts N` serves at least `N` more honest
//!   receipts of varied prompts and counts the failures.
//!
//! [`bench_verify`] fails (the command exits non-zero) when a cheat is caught on fewer
//! than [`REQUIRED_DETECTION`] of its receipts or any honest receipt fails.

use crate::inference::{resolve_gguf, BenchModel};
use crate::verify_serve::{
    bench_prompts, checker_for, checkers, default_modes, perturbed, serve, varied_prompts, verdict,
    work_norms, CheatMode, ServedReceipts, RANGES,
};
use anyhow::Context as _;
use neuroshard_inference::commitment::{Distance, TOLERANCE};
use neuroshard_inference::fault::Fault;
use neuroshard_inference::{DecodeOptions, ShardExecutor, WorkRecord};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Share of a cheater's receipts a check must reject.
pub const REQUIRED_DETECTION: f64 = 0.99;

/// Relative last-bit jitter of the "other machine" validator ([`perturbed`]).
const OTHER_MACHINE_EPS: f32 = 1e-6;

/// What to measure.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub model_path: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Generations of the cost measurement (each gives one receipt per shard).
    pub generations: usize,
    /// Tokens per generation.
    pub max_tokens: usize,
    /// Generations served per cheat mode (one receipt of the cheating shard each).
    pub cheat_generations: usize,
    /// Share of receipts the chain draws, in millionths (the chain spec's default).
    pub sample_permill: u32,
    /// The cheats measured.
    pub modes: Vec<CheatMode>,
    /// Where to write the measured detection for `bench econ` (JSON), if anywhere.
    pub detection_out: Option<PathBuf>,
    /// At least this many more honest receipts (short generations of varied prompts),
    /// each checked by both validators.
    pub honest_receipts: usize,
    /// Tokens per generation of the honest-receipt count.
    pub honest_tokens: usize,
    pub print: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            cache_dir: None,
            generations: 6,
            max_tokens: 48,
            cheat_generations: 24,
            sample_permill: 50_000,
            modes: default_modes(),
            detection_out: None,
            honest_receipts: 300,
            honest_tokens: 12,
            print: true,
        }
    }
}

/// Detection of one cheat.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionRow {
    pub mode: String,
    /// Upper bound on the compute the cheat saves ([`CheatMode::saved`]).
    pub saved: f64,
    pub receipts: usize,
    /// Share of the cheater's receipts a check rejects, `d(x)`.
    pub rejected: f64,
    /// Per-receipt catch probability at the sampling rate, `s x d(x)`.
    pub per_receipt: f64,
    /// Receipts until the cheater is caught with 99% probability.
    pub receipts_to_99: f64,
    /// The smallest commitment distances among its receipts (componentwise).
    pub min_distance: Distance,
}

#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub sample_permill: u32,
    pub receipts: usize,
    pub serve: Duration,
    pub replay: Duration,
    pub detection: Vec<DetectionRow>,
    /// Honest receipts checked (cost run plus the honest-receipt count), per validator.
    pub honest_checked: usize,
    /// The same-machine validator's verdicts on the honest receipts.
    pub honest_same: Verdicts,
    /// The "other machine" validator's verdicts on the honest receipts.
    pub honest_other: Verdicts,
    /// The tolerance the commitments are compared with (on the largest distance).
    pub tolerance: f32,
    /// Encoded commitment bytes per full chunk of 32 positions.
    pub commitment_bytes_per_32: f64,
    /// One capacity probe with the dev chain's parameters (issue 21).
    pub probe: crate::verify_probe::ProbeCost,
}

impl VerifyReport {
    /// Re-running a receipt relative to serving it.
    pub fn replay_ratio(&self) -> f64 {
        self.replay.as_secs_f64() / self.serve.as_secs_f64().max(1e-9)
    }

    /// Validators' compute as a share of serving compute at the sampling rate.
    pub fn verification_share(&self) -> f64 {
        f64::from(self.sample_permill) / 1e6 * self.replay_ratio()
    }

    /// Probes, their re-runs and spot checks together, as a share of serving compute.
    pub fn total_share(&self) -> f64 {
        self.verification_share() + self.probe.probe_share() + self.probe.rerun_share()
    }

    /// The measured inputs of `bench econ` (`neuroshard_econ::detection`).
    pub fn detection_file(&self) -> neuroshard_econ::detection::Detection {
        neuroshard_econ::detection::Detection {
            produced_by: format!(
                "neuroshard bench verify --detection-out FILE ({} honest receipts, {} cheated \
                 receipts per mode)",
                self.honest_checked,
                self.detection.first().map_or(0, |r| r.receipts)
            ),
            cpu: crate::kernels::cpu_name(),
            sample_permill: self.sample_permill,
            replay_ratio: self.replay_ratio(),
            verification_share: self.total_share(),
            sybil_split_ratio: self.probe.split_ratio(),
            modes: self
                .detection
                .iter()
                .map(|r| neuroshard_econ::detection::ModeDetection {
                    mode: r.mode.clone(),
                    receipts: r.receipts,
                    rejected: r.rejected,
                    saved: r.saved,
                })
                .collect(),
        }
    }

    /// Why the run fails its goals, if it does.
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .detection
            .iter()
            .filter(|r| r.rejected < REQUIRED_DETECTION)
            .map(|r| {
                format!(
                    "{}: caught on {:.1}% of receipts",
                    r.mode,
                    r.rejected * 100.0
                )
            })
            .collect();
        if self.honest_same.rejected + self.honest_other.rejected > 0 {
            out.push(format!(
                "{} + {} of {} honest receipts failed",
                self.honest_same.rejected, self.honest_other.rejected, self.honest_checked
            ));
        }
        out
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spot checks ({} receipts, 3 shards):", self.receipts)?;
        writeln!(
            f,
            "  serving {:.2} s, re-running every receipt {:.2} s: replay/serve = {:.3}",
            self.serve.as_secs_f64(),
            self.replay.as_secs_f64(),
            self.replay_ratio()
        )?;
        writeln!(
            f,
            "  verification share at {:.1}% sampled: {:.2}% of serving compute (goal <= 5%)",
            f64::from(self.sample_permill) / 1e4,
            self.verification_share() * 100.0
        )?;
        writeln!(f, "{}", self.probe)?;
        writeln!(
            f,
            "  probe + spot-check cost: {:.2}% of serving compute (goal <= 5%)",
            self.total_share() * 100.0
        )?;
        writeln!(
            f,
            "  commitment: {:.0} bytes per 32 tokens",
            self.commitment_bytes_per_32
        )?;
        writeln!(
            f,
            "  honest receipts: {} checked; failed: {} on the same machine (largest distance \
             max {:.2e} mean {:.2e}), {} on another (last-bit jitter {OTHER_MACHINE_EPS:e}, \
             largest distance max {:.2e} mean {:.2e}); tolerance (on the max) {:.2e}",
            self.honest_checked,
            self.honest_same.rejected,
            self.honest_same.max.max,
            self.honest_same.max.mean,
            self.honest_other.rejected,
            self.honest_other.max.max,
            self.honest_other.max.mean,
            self.tolerance,
        )?;
        writeln!(
            f,
            "  {:<36} {:>9} {:>14} {:>14} {:>16} {:>19}",
            "cheat (middle shard)",
            "receipts",
            "rejected d(x)",
            "caught/receipt",
            "receipts to 99%",
            "min distance max/mean"
        )?;
        for r in &self.detection {
            writeln!(
                f,
                "  {:<36} {:>9} {:>13.1}% {:>13.2}% {:>16.0} {:>9.2e} {:>9.2e}",
                r.mode,
                r.receipts,
                r.rejected * 100.0,
                r.per_receipt * 100.0,
                r.receipts_to_99,
                r.min_distance.max,
                r.min_distance.mean
            )?;
        }
        Ok(())
    }
}

/// What validators make of a set of receipts: how many they reject, and the smallest
/// and largest commitment distances (componentwise).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdicts {
    pub rejected: usize,
    pub min: Distance,
    pub max: Distance,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self {
            rejected: 0,
            min: Distance {
                max: f32::INFINITY,
                mean: f32::INFINITY,
            },
            max: Distance::default(),
        }
    }
}

impl Verdicts {
    fn observe(&mut self, d: Distance) {
        self.min.max = self.min.max.min(d.max);
        self.min.mean = self.min.mean.min(d.mean);
        self.max.max = self.max.max.max(d.max);
        self.max.mean = self.max.mean.max(d.mean);
    }

    fn add(&mut self, other: Verdicts) {
        self.rejected += other.rejected;
        self.observe(other.min);
        self.observe(other.max);
    }
}

/// Checks every receipt of `receipts` with `validators`.
fn judge(validators: &[ShardExecutor], receipts: &ServedReceipts) -> anyhow::Result<Verdicts> {
    let mut v = Verdicts::default();
    for (body, shard) in receipts {
        let (pass, distance) = verdict(checker_for(validators, &body.layers)?, body, shard)?;
        v.rejected += usize::from(!pass);
        v.observe(distance);
    }
    Ok(v)
}

/// Serves honest generations of varied prompts until at least `count` receipts, checking
/// each with both validators; returns the receipts checked and both validators'
/// verdicts.
fn honest_count(
    model: &BenchModel,
    hash: neuroshard_primitives::Hash,
    validators: [&[ShardExecutor]; 2],
    count: usize,
    tokens: usize,
    print: bool,
) -> anyhow::Result<(usize, Verdicts, Verdicts)> {
    let dopts = DecodeOptions {
        max_tokens: tokens,
        ..model.dopts.clone()
    };
    let (mut checked, mut same, mut other) = (0, Verdicts::default(), Verdicts::default());
    let batch = 50;
    while checked < count {
        let prompts = varied_prompts(model, checked / RANGES.len(), batch)?;
        let (receipts, _) = serve(&model.weights, hash, None, &prompts, &dopts, true)?;
        same.add(judge(validators[0], &receipts)?);
        other.add(judge(validators[1], &receipts)?);
        checked += receipts.len();
        if print {
            eprintln!(
                "bench: {checked} honest receipts checked, {} + {} failed (largest distance \
                 max/mean {:.2e}/{:.2e}, other machine {:.2e}/{:.2e})",
                same.rejected,
                other.rejected,
                same.max.max,
                same.max.mean,
                other.max.max,
                other.max.mean
            );
        }
    }
    Ok((checked, same, other))
}

/// The per-position work norms of the middle shard's honest receipts, ascending.
fn quiet_norms(validators: &[ShardExecutor], honest: &ServedReceipts) -> anyhow::Result<Vec<f32>> {
    let mut norms = Vec::new();
    for (body, shard) in honest.iter().filter(|(b, _)| b.layers == RANGES[1]) {
        let material = shard
            .material(&body.id())
            .ok_or_else(|| anyhow::anyhow!("receipt material not archived"))?;
        norms.extend(work_norms(
            checker_for(validators, &body.layers)?,
            body,
            &material,
        )?);
    }
    norms.sort_by(f32::total_cmp);
    Ok(norms)
}

/// Detection of `mode`: the share of the cheating middle shard's receipts rejected.
fn detect(
    model: &BenchModel,
    hash: neuroshard_primitives::Hash,
    validators: &[ShardExecutor],
    mode: CheatMode,
    norms: &[f32],
    generations: usize,
    s: f64,
) -> anyhow::Result<DetectionRow> {
    let prompts = bench_prompts(model, generations);
    let fault = mode.fault(norms);
    let (receipts, _) = serve(
        &model.weights,
        hash,
        Some(fault),
        &prompts,
        &model.dopts,
        false,
    )?;
    // A receipt of a random skipper that happens to fake none of its positions is honest
    // work; only the others count.
    let cheated_in = |b: &WorkRecord| match fault {
        Fault::SkipWork(f) => {
            (b.position_start..b.position_end).any(|p| f.fakes(&b.session, p as usize))
        }
        _ => true,
    };
    let cheated: ServedReceipts = receipts
        .into_iter()
        .filter(|(b, _)| b.layers == RANGES[1] && cheated_in(b))
        .collect();
    let v = judge(validators, &cheated)?;
    let d = v.rejected as f64 / cheated.len().max(1) as f64;
    let p = s * d;
    Ok(DetectionRow {
        mode: mode.label(),
        saved: mode.saved(),
        receipts: cheated.len(),
        rejected: d,
        per_receipt: p,
        receipts_to_99: if p > 0.0 {
            (0.01f64).ln() / (1.0 - p).ln()
        } else {
            f64::INFINITY
        },
        min_distance: v.min,
    })
}

/// Runs the measurements and prints the report when `opts.print`; fails when a goal is
/// missed (after printing).
pub fn bench_verify(opts: VerifyOptions) -> anyhow::Result<VerifyReport> {
    let (_, hash, path) = resolve_gguf(
        opts.model_path.as_ref(),
        opts.cache_dir.as_ref(),
        opts.print,
    )?;
    let prompt = crate::inference::BenchOptions::default().prompt;
    let model = BenchModel::load(&path, &prompt, opts.max_tokens)?;
    // Validators' executors, separate from the workers' shards: one on this machine, one
    // whose arithmetic differs in the last bits.
    let same = checkers(&model.weights)?;
    let other = checkers(&perturbed(&model.weights, OTHER_MACHINE_EPS)?)?;
    if opts.print {
        eprintln!("bench: serving {} honest generations", opts.generations);
    }
    // Warm-up (page in weights, spin up the pools), then the measured run.
    let prompts = bench_prompts(&model, opts.generations);
    serve(
        &model.weights,
        hash,
        None,
        &prompts[..1],
        &model.dopts,
        false,
    )?;
    let (honest, serve_time) = serve(&model.weights, hash, None, &prompts, &model.dopts, false)?;
    let started = Instant::now();
    let mut honest_same = judge(&same, &honest)?;
    let replay = started.elapsed();
    let mut honest_other = judge(&other, &honest)?;
    let mut honest_checked = honest.len();
    let commitment_bytes_per_32 = commitment_size(&honest)?;
    let norms = quiet_norms(&same, &honest)?;
    let s = f64::from(opts.sample_permill) / 1e6;
    let mut detection = Vec::new();
    for &mode in &opts.modes {
        if opts.print {
            eprintln!("bench: middle shard cheats: {}", mode.label());
        }
        let row = detect(&model, hash, &same, mode, &norms, opts.cheat_generations, s)?;
        detection.push(row);
    }
    if opts.honest_receipts > 0 {
        let (n, a, b) = honest_count(
            &model,
            hash,
            [&same, &other],
            opts.honest_receipts,
            opts.honest_tokens,
            opts.print,
        )?;
        honest_checked += n;
        honest_same.add(a);
        honest_other.add(b);
    }
    let probe = crate::verify_probe::measure(
        &model.weights,
        &neuroshard_runtime::ponw::ProbeParams::default(),
    )?;
    let report = VerifyReport {
        sample_permill: opts.sample_permill,
        receipts: honest.len(),
        serve: serve_time,
        replay,
        detection,
        honest_checked,
        honest_same,
        honest_other,
        tolerance: TOLERANCE,
        commitment_bytes_per_32,
        probe,
    };
    if opts.print {
        println!("{report}");
    }
    if let Some(path) = &opts.detection_out {
        let json = serde_json::to_string_pretty(&report.detection_file())?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: detection written to {}", path.display());
    }
    let failures = report.failures();
    anyhow::ensure!(failures.is_empty(), "bench verify: {}", failures.join("; "));
    Ok(report)
}

/// Encoded commitment bytes per 32 positions, averaged over `receipts`' positions (the
/// 10-byte header excluded).
fn commitment_size(receipts: &ServedReceipts) -> anyhow::Result<f64> {
    let (mut bytes, mut positions) = (0usize, 0usize);
    for (body, shard) in receipts {
        let material = shard
            .material(&body.id())
            .ok_or_else(|| anyhow::anyhow!("receipt material not archived"))?;
        bytes += material.commitment.len().saturating_sub(10);
        positions += (body.position_end - body.position_start) as usize;
    }
    Ok(bytes as f64 * 32.0 / positions.max(1) as f64)
}
