//! `neuroshard bench verify`: what spot checks cost and what they catch, on the real
//! model through three in-process shards (0-10, 10-20, 20-30).
//!
//! - Cost: greedy generations are served (decode time measured), then every receipt is
//!   re-run the way a validator does ([`check_work`]: one prefill over the committed
//!   inputs). Re-running one receipt costs `replay / serve` of serving it; at the chain's
//!   sampling rate `s` the validators spend `s x replay / serve` of the serving compute.
//! - Detection: the middle shard fakes `x` of its positions ([`SkipWork`]: it returns its
//!   input instead of running its layers); `d(x)` is the share of its receipts a check
//!   rejects. A drawn receipt is caught with probability `d(x)`, so each receipt is
//!   caught with `p = s x d(x)` and a cheater survives `n` receipts with `(1 - p)^n`.
//!
//! Honest receipts must all pass (the bench fails otherwise).

use crate::inference::{resolve_gguf, BenchModel};
use neuroshard_inference::decode::decode;
use neuroshard_inference::generate::{client_for, record_local_work};
use neuroshard_inference::spot_check::{check_work, CheckOutcome};
use neuroshard_inference::transport::InProcessTransport;
use neuroshard_inference::{fault::SkipWork, shard::Shard};
use neuroshard_inference::{ShardExecutor, WorkRecord};
use neuroshard_primitives::{Hash, LayerRange};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    pub model_path: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Generations per measurement (each gives one receipt per shard).
    pub generations: usize,
    /// Tokens per generation.
    pub max_tokens: usize,
    /// Share of receipts the chain draws, in millionths (the chain spec's default).
    pub sample_permill: u32,
    /// Shares of positions the cheating shard fakes, in millionths.
    pub cheat_permills: Vec<u32>,
    pub print: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            cache_dir: None,
            generations: 6,
            max_tokens: 48,
            sample_permill: 50_000,
            cheat_permills: vec![1_000_000, 100_000, 20_000, 5_000],
            print: true,
        }
    }
}

/// Detection of one cheating rate.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionRow {
    pub cheat_permill: u32,
    pub receipts: usize,
    /// Share of the cheater's receipts a check rejects, `d(x)`.
    pub rejected: f64,
    /// Per-receipt catch probability at the sampling rate, `s x d(x)`.
    pub per_receipt: f64,
    /// Receipts until the cheater is caught with 99% probability.
    pub receipts_to_99: f64,
}

#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub sample_permill: u32,
    pub receipts: usize,
    pub serve: Duration,
    pub replay: Duration,
    pub detection: Vec<DetectionRow>,
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
        writeln!(
            f,
            "  {:>10} {:>9} {:>14} {:>14} {:>16}",
            "cheated", "receipts", "rejected d(x)", "caught/receipt", "receipts to 99%"
        )?;
        for r in &self.detection {
            writeln!(
                f,
                "  {:>9.1}% {:>9} {:>13.0}% {:>13.1}% {:>16.0}",
                f64::from(r.cheat_permill) / 1e4,
                r.receipts,
                r.rejected * 100.0,
                r.per_receipt * 100.0,
                r.receipts_to_99
            )?;
        }
        Ok(())
    }
}

const RANGES: [LayerRange; 3] = [
    LayerRange { start: 0, end: 10 },
    LayerRange { start: 10, end: 20 },
    LayerRange { start: 20, end: 30 },
];

/// Every receipt of a served run with the shard that issued it.
type ServedReceipts = Vec<(WorkRecord, Arc<Shard>)>;

/// Serves `generations` greedy generations (the middle shard faking `fault`), returning
/// every receipt with its shard and the decode time.
fn serve(
    model: &BenchModel,
    hash: Hash,
    fault: Option<SkipWork>,
    generations: usize,
) -> anyhow::Result<(ServedReceipts, Duration)> {
    let shards: Vec<Arc<Shard>> = RANGES
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut s = Shard::new(model.weights.slice(r.start as usize..r.end as usize)?, hash)?;
            if let (1, Some(f)) = (i, fault) {
                s = s.with_fault(f);
            }
            Ok(Arc::new(s))
        })
        .collect::<anyhow::Result<_>>()?;
    let route: Vec<Arc<InProcessTransport>> = shards
        .iter()
        .map(|s| Arc::new(InProcessTransport::new(s.clone())))
        .collect();
    let mut receipts = Vec::new();
    let mut busy = Duration::ZERO;
    for g in 0..generations {
        let mut client = client_for(&route, hash, [g as u8 + 40; 16])?;
        // A different prompt per generation: the chat prompt with g extra tokens.
        let mut prompt = model.prompt.clone();
        prompt.extend(model.prompt.iter().take(g).copied());
        let started = Instant::now();
        let out = decode(&mut client, &prompt, &model.dopts, None, &mut |_| {})?;
        busy += started.elapsed();
        for (recorded, shard) in record_local_work(&route, &client, out.accepted_positions as u32)?
            .into_iter()
            .zip(&shards)
        {
            receipts.push((recorded.record, shard.clone()));
        }
        client.close();
    }
    Ok((receipts, busy))
}

fn verdict(exec: &ShardExecutor, work: &WorkRecord, shard: &Shard) -> anyhow::Result<bool> {
    let material = shard
        .material(&work.id())
        .ok_or_else(|| anyhow::anyhow!("receipt material not archived"))?;
    Ok(check_work(exec, work, &material)? == CheckOutcome::Match)
}

/// Runs the measurements and prints the report when `opts.print`.
pub fn bench_verify(opts: VerifyOptions) -> anyhow::Result<VerifyReport> {
    let (_, hash, path) = resolve_gguf(
        opts.model_path.as_ref(),
        opts.cache_dir.as_ref(),
        opts.print,
    )?;
    let prompt = crate::inference::BenchOptions::default().prompt;
    let model = BenchModel::load(&path, &prompt, opts.max_tokens)?;
    // Validators' executors, separate from the workers' shards.
    let checkers: Vec<ShardExecutor> = RANGES
        .iter()
        .map(|r| {
            ShardExecutor::new(model.weights.slice(r.start as usize..r.end as usize)?)
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    let checker_for = |layers: &LayerRange| {
        RANGES
            .iter()
            .position(|r| r == layers)
            .map(|i| &checkers[i])
            .ok_or_else(|| anyhow::anyhow!("no checker for {layers}"))
    };
    if opts.print {
        eprintln!("bench: serving {} honest generations", opts.generations);
    }
    // Warm-up (page in weights, spin up the pools), then the measured run.
    serve(&model, hash, None, 1)?;
    let (honest, serve_time) = serve(&model, hash, None, opts.generations)?;
    let started = Instant::now();
    for (body, shard) in &honest {
        anyhow::ensure!(
            verdict(checker_for(&body.layers)?, body, shard)?,
            "an honest receipt ({}) failed its spot check",
            body.layers
        );
    }
    let replay = started.elapsed();
    let s = f64::from(opts.sample_permill) / 1e6;
    let mut detection = Vec::new();
    for &permill in &opts.cheat_permills {
        if opts.print {
            eprintln!(
                "bench: middle shard faking {:.1}% of its positions",
                f64::from(permill) / 1e4
            );
        }
        let fault = SkipWork { permill, seed: 11 };
        let (receipts, _) = serve(&model, hash, Some(fault), opts.generations)?;
        let cheated: Vec<_> = receipts
            .iter()
            .filter(|(b, _)| b.layers == RANGES[1])
            .collect();
        let mut rejected = 0usize;
        for (body, shard) in &cheated {
            if !verdict(checker_for(&body.layers)?, body, shard)? {
                rejected += 1;
            }
        }
        let d = rejected as f64 / cheated.len().max(1) as f64;
        let p = s * d;
        detection.push(DetectionRow {
            cheat_permill: permill,
            receipts: cheated.len(),
            rejected: d,
            per_receipt: p,
            receipts_to_99: if p > 0.0 {
                (0.01f64).ln() / (1.0 - p).ln()
            } else {
                f64::INFINITY
            },
        });
    }
    let report = VerifyReport {
        sample_permill: opts.sample_permill,
        receipts: honest.len(),
        serve: serve_time,
        replay,
        detection,
    };
    if opts.print {
        println!("{report}");
    }
    Ok(report)
}
