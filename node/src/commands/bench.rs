//! `neuroshard bench ...`: runs a benchmark from [`crate::bench`] on a blocking thread
//! (they use every core) and prints its report.

use crate::bench::ledger::{self, LedgerBenchOptions};
use crate::bench::network;
use crate::cli::BenchCommand;
use anyhow::Context;
use neuroshard_inference::bench::{bench_inference, BenchOptions};
use neuroshard_inference::bench_sweep::{bench_sweep, SweepOptions};
use neuroshard_inference::bench_verify::{bench_verify, VerifyOptions};
use std::time::Duration;

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ledger(args) => {
            let opts = LedgerBenchOptions {
                receipts: args.receipts,
                batch: args.batch,
                rounds: args.rounds,
            };
            tokio::task::spawn_blocking(move || ledger::run(&opts)).await??;
        }
        BenchCommand::Inference(args) => {
            let defaults = BenchOptions::default();
            let opts = BenchOptions {
                prompt: args.prompt.unwrap_or(defaults.prompt.clone()),
                model_path: args.model,
                max_tokens: args.max_tokens,
                hop_latency: Duration::from_millis(args.hop_latency_ms),
                model_drafter: !args.no_model_drafter,
                ..defaults
            };
            tokio::task::spawn_blocking(move || bench_inference(opts)).await??;
        }
        BenchCommand::Network(args) => {
            let opts = network::NetworkBenchOptions {
                model: args.model,
                max_tokens: args.max_tokens,
                prompt: args.prompt,
            };
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || network::run(&opts, runtime)).await??;
        }
        BenchCommand::Sweep(args) => {
            let opts = SweepOptions {
                model_path: args.model,
                max_tokens: args.max_tokens,
                ..SweepOptions::default()
            };
            let report = tokio::task::spawn_blocking(move || bench_sweep(opts)).await??;
            std::fs::write(&args.svg, crate::bench::plot::sweep_svg(&report))
                .with_context(|| format!("writing {}", args.svg.display()))?;
            eprintln!("bench: chart written to {}", args.svg.display());
        }
        BenchCommand::Verify(args) => {
            let opts = VerifyOptions {
                model_path: args.model,
                generations: args.generations,
                max_tokens: args.max_tokens,
                sample_permill: args.sample_permill,
                ..VerifyOptions::default()
            };
            tokio::task::spawn_blocking(move || bench_verify(opts)).await??;
        }
        BenchCommand::Sim(args) => {
            let opts = crate::bench::sim::SimOptions {
                nodes: args.nodes,
                lookups: args.lookups,
                record_lookups: args.record_lookups,
                messages: args.messages,
                settle_secs: args.settle_secs,
                receipts: args.receipts,
                seed: args.seed,
                noise: args.noise,
            };
            crate::bench::sim::run(&opts).await?;
        }
        BenchCommand::ShardServer(args) => {
            let layers = neuroshard_primitives::LayerRange::parse(&args.layers)?;
            network::shard_server(args.model, layers).await?;
        }
    }
    Ok(())
}
