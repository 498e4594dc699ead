//! `neuroshard bench sweep`: decode speed as the pipeline gets longer and its hops
//! slower, plain versus n-gram speculative decoding, on the real model through in-process
//! shards with injected per-hop latency. Two series: tok/s against the number of shards
//! (at a fixed latency) and against the per-hop latency (at a fixed number of shards),
//! beside the single-process baseline of the same run. Every speculative run must give
//! the plain run's tokens.

use crate::inference::{resolve_gguf, timed, BenchModel};
use neuroshard_inference::drafter::NgramDrafter;
use neuroshard_inference::generate::{client_for, local_route};
use neuroshard_primitives::LayerRange;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub model_path: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Tokens generated per measurement.
    pub max_tokens: usize,
    /// The user message (chat template applied).
    pub prompt: String,
    /// Shard counts of the first series (each an even split of the layers).
    pub shard_counts: Vec<usize>,
    /// Per-hop latency of the first series.
    pub latency_for_shards: Duration,
    /// Per-hop latencies of the second series.
    pub latencies: Vec<Duration>,
    /// Shard count of the second series.
    pub shards_for_latency: usize,
    pub print: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            cache_dir: None,
            max_tokens: 64,
            prompt: crate::inference::BenchOptions::default().prompt,
            shard_counts: vec![1, 2, 3, 5, 6],
            latency_for_shards: Duration::from_millis(10),
            latencies: [0, 5, 10, 25, 50].map(Duration::from_millis).to_vec(),
            shards_for_latency: 3,
            print: true,
        }
    }
}

/// One measured layout.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub shards: usize,
    pub latency_ms: u64,
    pub plain_tps: f64,
    pub speculative_tps: f64,
    pub acceptance_rate: f64,
    pub tokens_per_round: f64,
}

/// The two series and the baseline.
#[derive(Clone, Debug)]
pub struct SweepReport {
    pub tokens: usize,
    pub single_tps: f64,
    pub by_shards: Vec<SweepPoint>,
    pub by_latency: Vec<SweepPoint>,
}

/// `n` contiguous ranges covering `num_layers` layers, sizes differing by at most one.
pub fn even_split(num_layers: usize, n: usize) -> Vec<LayerRange> {
    let n = n.clamp(1, num_layers.max(1));
    (0..n)
        .map(|i| LayerRange {
            start: (i * num_layers / n) as u16,
            end: ((i + 1) * num_layers / n) as u16,
        })
        .collect()
}

/// Runs the sweep and prints it when `opts.print`.
pub fn bench_sweep(opts: SweepOptions) -> anyhow::Result<SweepReport> {
    let (_, hash, path) = resolve_gguf(
        opts.model_path.as_ref(),
        opts.cache_dir.as_ref(),
        opts.print,
    )?;
    let model = BenchModel::load(&path, &opts.prompt, opts.max_tokens)?;
    let (plain, single_tps) = model.single_process(hash)?;
    let num_layers = model.weights.config.num_layers;
    let mut session = 10u8;
    let mut measure = |shards: usize, latency: Duration| -> anyhow::Result<SweepPoint> {
        if opts.print {
            eprintln!(
                "bench: {shards} shards x {} ms per hop",
                latency.as_millis()
            );
        }
        let route = local_route(
            &model.weights,
            hash,
            &even_split(num_layers, shards),
            latency,
        )?;
        session = session.wrapping_add(2);
        let (slow, plain_tps) = timed(
            &mut client_for(&route, hash, [session; 16])?,
            &model.prompt,
            &model.dopts,
            None,
        )?;
        let mut ngram = NgramDrafter::default();
        let (spec, speculative_tps) = timed(
            &mut client_for(&route, hash, [session + 1; 16])?,
            &model.prompt,
            &model.dopts,
            Some(&mut ngram),
        )?;
        anyhow::ensure!(
            slow.tokens == plain.tokens && spec.tokens == plain.tokens,
            "{shards} shards x {} ms: output differs from single-process output",
            latency.as_millis()
        );
        Ok(SweepPoint {
            shards,
            latency_ms: latency.as_millis() as u64,
            plain_tps,
            speculative_tps,
            acceptance_rate: spec.stats.acceptance_rate(),
            tokens_per_round: spec.stats.tokens_per_round(),
        })
    };
    let by_shards = opts
        .shard_counts
        .iter()
        .map(|&n| measure(n, opts.latency_for_shards))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let by_latency = opts
        .latencies
        .iter()
        .map(|&l| measure(opts.shards_for_latency, l))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = SweepReport {
        tokens: plain.tokens.len(),
        single_tps,
        by_shards,
        by_latency,
    };
    if opts.print {
        println!("{report}");
    }
    Ok(report)
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pipeline sweep ({} tokens per run, greedy; single process {:.1} tok/s)",
            self.tokens, self.single_tps
        )?;
        writeln!(
            f,
            "| shards | ms per hop | plain tok/s | n-gram speculative tok/s | speedup | acceptance | tokens/round |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        for p in self.by_shards.iter().chain(&self.by_latency) {
            writeln!(
                f,
                "| {} | {} | {:.1} | {:.1} | {:.2}x | {:.0}% | {:.2} |",
                p.shards,
                p.latency_ms,
                p.plain_tps,
                p.speculative_tps,
                p.speculative_tps / p.plain_tps.max(1e-9),
                p.acceptance_rate * 100.0,
                p.tokens_per_round
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_splits_cover_every_layer_once() {
        for n in 1..=31 {
            let ranges = even_split(30, n);
            assert_eq!(ranges.len(), n.min(30));
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, 30);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            assert!(ranges.iter().all(|r| r.end > r.start));
        }
    }
}
