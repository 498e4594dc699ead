//! `neuroshard bench econ`: the command line of the economic simulation
//! (`neuroshard_econ`): runs it over the real runtime, prints one row per strategy and
//! each adversary's best response, and fails when a cheat pays or honest work does not.

use anyhow::Context;
use clap::Args;
use neuroshard_econ::costs::Prices;
use neuroshard_econ::detection::Detection;
use neuroshard_econ::EconOptions;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EconBenchArgs {
    /// Reward epochs to simulate (10 blocks of 2 s each on the dev chain).
    #[arg(long, default_value_t = 1_000)]
    pub epochs: u64,
    /// Seed of the agents' choices (routing, which receipts are cheated).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `bench verify`'s measured detection (written with `--detection-out`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "docs/verify-detection.json"
    )]
    pub detection: PathBuf,
    /// Honest workers per canonical range.
    #[arg(long, default_value_t = 3)]
    pub honest_per_range: usize,
    /// Ordinary clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Requests (32 tokens through the whole model) per client per block.
    #[arg(long, default_value_t = 1)]
    pub requests_per_block: usize,
    /// Compute price of one position through one layer, NSHD.
    #[arg(long, default_value_t = Prices::default().layer_token)]
    pub price_layer_token: f64,
    /// Price of one machine online for a minute, NSHD.
    #[arg(long, default_value_t = Prices::default().machine_minute)]
    pub price_machine_minute: f64,
    /// Only build blocks (skip importing each one as a second node would).
    #[arg(long)]
    pub no_import: bool,
    /// Workers' nodes keep serving clients whose escrow release is requested (the
    /// rule before this bench found the release race: reproduces the "before").
    #[arg(long)]
    pub serve_releasing_clients: bool,
}

/// Runs the simulation and prints its report; fails when the criteria fail.
pub fn run(args: &EconBenchArgs) -> anyhow::Result<()> {
    let detection = Detection::load(&args.detection)
        .with_context(|| "run `neuroshard bench verify --detection-out FILE` to measure it")?;
    let opts = EconOptions {
        epochs: args.epochs,
        seed: args.seed,
        honest_per_range: args.honest_per_range,
        clients: args.clients,
        requests_per_block: args.requests_per_block,
        prices: Prices {
            layer_token: args.price_layer_token,
            machine_minute: args.price_machine_minute,
            ..Prices::default()
        },
        import: !args.no_import,
        serve_releasing: args.serve_releasing_clients,
        print_progress: true,
    };
    let started = std::time::Instant::now();
    let report = neuroshard_econ::run(&opts, &detection)?;
    println!("{report}");
    println!(
        "simulated in {:.0} s on {}",
        started.elapsed().as_secs_f64(),
        crate::kernels::cpu_name()
    );
    let failures = report.failures();
    anyhow::ensure!(failures.is_empty(), "bench econ: {}", failures.join("; "));
    Ok(())
}
