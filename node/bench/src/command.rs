//! The `neuroshard bench ...` command line (clap) and its dispatch: each benchmark runs
//! on a blocking thread (they use every core) and prints its report.

use crate::inference::{bench_inference, BenchOptions};
use crate::ledger::{self, LedgerBenchOptions};
use crate::network;
use crate::sweep::{bench_sweep, SweepOptions};
use crate::verify::{bench_verify, VerifyOptions};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signed inference receipts verified and applied per second in block import.
    Ledger(LedgerBenchArgs),
    /// Decode speed: single process, 3-shard pipeline, speculative vs plain under
    /// injected per-hop latency, commitment size.
    Inference(InferenceBenchArgs),
    /// Decode speed with the model's three shards in three processes over libp2p on
    /// loopback vs single process, and speculative vs plain across the processes.
    Network(NetworkBenchArgs),
    /// Decode speed against the number of shards and the per-hop latency, plain vs
    /// speculative; prints a table and writes an SVG chart.
    Sweep(SweepBenchArgs),
    /// Spot checks: validators' compute as a share of serving compute, and how often a
    /// worker faking part of its work is caught.
    Verify(VerifyBenchArgs),
    /// The PoNW economy over the real runtime: honest and cheating agents' capital,
    /// compute cost, rewards, fees, slashes and ROI; fails when any cheat's best
    /// response pays (see docs/ECONOMICS.md).
    Econ(crate::econ::EconBenchArgs),
    /// Many nodes' network services in one process over the in-memory transport: DHT
    /// lookup and gossip figures, and block import at the matching receipt load.
    Sim(SimBenchArgs),
    /// Our fused matrix kernels against candle's `QMatMul` for every GGUF format they hold
    /// (2048 x 2048 and 1536 x 576, m = 1 and 4), with the CPU's name.
    Kernels(KernelsBenchArgs),
    /// Proof of Training: in-process holders train a LoRA adapter for a few DiLoCo
    /// rounds; time per round, bytes synchronised per round against the per-step
    /// data-parallel baseline, and the held-out loss after every round.
    Training(TrainingBenchArgs),
    /// Many users at once: closed-loop streaming clients against a real dev node over
    /// HTTP at several concurrencies (aggregate tok/s, inter-token latency), and the
    /// executor's batched ceiling in process.
    Serve(ServeBenchArgs),
    /// Time to first token of chat completions sharing a long system prompt: the
    /// shards' prefix cache hit against cold, on a real dev node over HTTP.
    Prefix(PrefixBenchArgs),
    /// Historical state on a long synthetic chain: reads at old blocks through the
    /// version history against rebuilding from undo records, commit cost and database
    /// size, archive against `--state-pruning`.
    StateHistory(crate::state_history::StateHistoryOptions),
    /// (Internal) a bare shard server process for `bench network`.
    #[command(hide = true)]
    ShardServer(ShardServerArgs),
}

#[derive(Debug, Args)]
pub struct PrefixBenchArgs {
    /// Timed requests of each kind (cached and cold).
    #[arg(long, default_value_t = 8)]
    pub requests: usize,
    /// Paragraphs of the system prompt (about 40 tokens each).
    #[arg(long, default_value_t = 12)]
    pub paragraphs: usize,
}

#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// Numbers of concurrent clients to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub clients: Vec<usize>,
    /// Completions each client runs per measurement, back to back.
    #[arg(long, default_value_t = 2)]
    pub requests: usize,
    /// Tokens per completion.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// A GGUF file for the ceiling (default: the chain's model, fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Clients arriving staggered for the time-to-first-token measurement (0: none).
    #[arg(long, default_value_t = 24)]
    pub arrivals: usize,
    /// Milliseconds between two arrivals.
    #[arg(long, default_value_t = 100)]
    pub arrival_every_ms: u64,
    /// Prompt tokens of an arriving client.
    #[arg(long, default_value_t = 200)]
    pub arrival_prompt: usize,
    /// Completion tokens of an arriving client.
    #[arg(long, default_value_t = 32)]
    pub arrival_tokens: usize,
    /// Where to write the SVG chart.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// 1: one dev node; 3: a three-process pipeline on loopback (Alice 0-10, Bob 10-20,
    /// Charlie 20-30) with injected per-hop latency, batched forwards against one
    /// session per call (needs a `fault-injection` build; use `--clients 1,4,16`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub nodes: u8,
    /// Injected latency of each remote hop (`--nodes 3`), milliseconds.
    #[arg(long, default_value_t = 20)]
    pub hop_latency_ms: u64,
}

#[derive(Debug, Args)]
pub struct NetworkBenchArgs {
    /// Tokens generated per measurement.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// A GGUF file (default: the chain's model, fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The prompt (a user message in the chat template).
    #[arg(
        long,
        default_value = "Write a short story about a robot who learns to paint. Repeat the robot's name often."
    )]
    pub prompt: String,
}

#[derive(Debug, Args)]
pub struct SweepBenchArgs {
    /// Tokens generated per measurement.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Where to write the SVG chart.
    #[arg(long, value_name = "PATH", default_value = "bench-sweep.svg")]
    pub svg: PathBuf,
    /// A GGUF file (default: the chain's model, fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyBenchArgs {
    /// Generations per measurement (one receipt per shard each).
    #[arg(long, default_value_t = 6)]
    pub generations: usize,
    /// Tokens per generation.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Share of receipts drawn for a check, in millionths (the chain spec's default).
    #[arg(long, default_value_t = 50_000)]
    pub sample_permill: u32,
    /// Generations served per cheat mode (one receipt of the cheating shard each).
    #[arg(long, default_value_t = 24)]
    pub cheat_generations: usize,
    /// At least this many more honest receipts (short generations of varied prompts)
    /// checked for false positives.
    #[arg(long, default_value_t = 300)]
    pub honest_receipts: usize,
    /// Tokens per generation of the honest receipts.
    #[arg(long, default_value_t = 12)]
    pub honest_tokens: usize,
    /// A GGUF file (default: the chain's model, fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Write the measured detection per cheat mode, the verification cost and the
    /// Sybil split as JSON here (the input of `bench econ`, e.g.
    /// docs/verify-detection.json).
    #[arg(long, value_name = "FILE")]
    pub detection_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimBenchArgs {
    /// Nodes in the simulated network.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Random DHT lookups to time.
    #[arg(long, default_value_t = 500)]
    pub lookups: usize,
    /// Lookups of signed provider records to time.
    #[arg(long, default_value_t = 200)]
    pub record_lookups: usize,
    /// Seconds the network settles after the last node joined, before measuring.
    #[arg(long, default_value_t = 20)]
    pub settle_secs: u64,
    /// Gossip messages to publish.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Receipts in the block whose import is timed.
    #[arg(long, default_value_t = 10_000)]
    pub receipts: usize,
    /// Seed of the topology and of the choices of nodes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Encrypt the in-memory connections with noise, as on TCP. Off by default: every
    /// node's handshakes would then run on this machine's few cores instead of on
    /// its own, and dominate the simulation.
    #[arg(long)]
    pub noise: bool,
}

#[derive(Debug, Args)]
pub struct ShardServerArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub layers: String,
}

#[derive(Debug, Args)]
pub struct InferenceBenchArgs {
    /// Tokens generated per measurement.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Latency injected per hop (3 hops) for the speculative comparison, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub hop_latency_ms: u64,
    /// Skip the (slower) Q4_1-drafts-for-f32 measurement.
    #[arg(long)]
    pub no_model_drafter: bool,
    /// A GGUF file (default: the chain's model, fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// The prompt, a user message in the chat template (default: a paragraph to copy,
    /// the case prompt lookup drafting is for).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Instead: generate a random-weight Llama-shaped model of this size (`1b`), have
    /// llama.cpp's quantizer make each `--format` of it (cached in the model cache as
    /// `bench-1b-*.gguf`) and compare both engines' decode speed on each file.
    #[arg(long, value_name = "SIZE")]
    pub make_model: Option<String>,
    /// Formats for `--make-model` (q4_k_m, q5_k_m, q6_k, q8_0, q4_0, q4_1, q5_0, q5_1).
    #[arg(long, value_delimiter = ',', default_value = "q4_k_m,q5_k_m,q6_k,q8_0")]
    pub format: Vec<String>,
    /// Timed rounds per engine for `--make-model` (alternating, after a warm-up).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct LedgerBenchArgs {
    /// Receipts in the benchmark block.
    #[arg(long, default_value_t = 20_000)]
    pub receipts: usize,
    /// Receipts per submit_receipts extrinsic.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Timed imports of the block (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct KernelsBenchArgs {
    /// Milliseconds of timed runs per format, shape, m and engine.
    #[arg(long, default_value_t = 300)]
    pub budget_ms: u64,
    /// Only these formats (comma separated: q4_0,q4_k,f16,...; default: all).
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TrainingBenchArgs {
    /// `tiny` (a small random model, seconds) or `smollm2` (the chain's model).
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// DiLoCo rounds to run.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// The shard the holders train (the real model only; default 26-30).
    #[arg(long, value_name = "START-END")]
    pub shard: Option<String>,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::StateHistory(opts) => {
            tokio::task::spawn_blocking(move || crate::state_history::run(&opts)).await??;
        }
        BenchCommand::Ledger(args) => {
            let opts = LedgerBenchOptions {
                receipts: args.receipts,
                batch: args.batch,
                rounds: args.rounds,
            };
            tokio::task::spawn_blocking(move || ledger::run(&opts)).await??;
        }
        BenchCommand::Inference(args) if args.make_model.is_some() => {
            let opts = crate::formats::FormatsOptions {
                make_model: args.make_model.unwrap_or_default(),
                formats: args.format,
                dir: neuroshard_inference::fetch::default_cache_dir(),
                tokens: args.max_tokens,
                rounds: args.rounds,
            };
            tokio::task::spawn_blocking(move || crate::formats::run(&opts)).await??;
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
        BenchCommand::Serve(args) => {
            let opts = crate::serve::ServeOptions {
                clients: args.clients,
                requests: args.requests,
                max_tokens: args.max_tokens,
                model: args.model,
                arrivals: args.arrivals,
                arrival_every: Duration::from_millis(args.arrival_every_ms),
                arrival_prompt: args.arrival_prompt,
                arrival_tokens: args.arrival_tokens,
                svg: args.svg,
                nodes: args.nodes,
                hop_latency_ms: args.hop_latency_ms,
            };
            tokio::task::spawn_blocking(move || crate::serve::run(&opts)).await??;
        }
        BenchCommand::Prefix(args) => {
            let opts = crate::prefix::PrefixOptions {
                requests: args.requests,
                paragraphs: args.paragraphs,
            };
            tokio::task::spawn_blocking(move || crate::prefix::run(&opts)).await??;
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
            std::fs::write(&args.svg, crate::plot::sweep_svg(&report))
                .with_context(|| format!("writing {}", args.svg.display()))?;
            eprintln!("bench: chart written to {}", args.svg.display());
        }
        BenchCommand::Verify(args) => {
            let opts = VerifyOptions {
                model_path: args.model,
                generations: args.generations,
                max_tokens: args.max_tokens,
                sample_permill: args.sample_permill,
                cheat_generations: args.cheat_generations,
                honest_receipts: args.honest_receipts,
                honest_tokens: args.honest_tokens,
                detection_out: args.detection_out,
                ..VerifyOptions::default()
            };
            tokio::task::spawn_blocking(move || bench_verify(opts)).await??;
        }
        BenchCommand::Econ(args) => {
            tokio::task::spawn_blocking(move || crate::econ::run(&args)).await??;
        }
        BenchCommand::Sim(args) => {
            let opts = crate::sim::SimOptions {
                nodes: args.nodes,
                lookups: args.lookups,
                record_lookups: args.record_lookups,
                messages: args.messages,
                settle_secs: args.settle_secs,
                receipts: args.receipts,
                seed: args.seed,
                noise: args.noise,
            };
            crate::sim::run(&opts).await?;
        }
        BenchCommand::Kernels(args) => {
            let opts = crate::kernels::KernelsOptions {
                budget: Duration::from_millis(args.budget_ms),
                formats: args
                    .formats
                    .iter()
                    .map(|f| crate::kernels::parse_format(f))
                    .collect::<anyhow::Result<_>>()?,
            };
            tokio::task::spawn_blocking(move || crate::kernels::run(&opts)).await??;
        }
        BenchCommand::Training(args) => {
            tokio::task::spawn_blocking(move || crate::training::run(&args)).await??;
        }
        BenchCommand::ShardServer(args) => {
            let layers = neuroshard_primitives::LayerRange::parse(&args.layers)?;
            network::shard_server(args.model, layers).await?;
        }
    }
    Ok(())
}
