//! One module per subcommand; [`run`] dispatches the parsed command line. The node
//! commands (`dev`, `run`) start a full node through [`crate::service`]; the wallet
//! commands (`tx`, `balance`) talk to a node over JSON-RPC; `key` and `model-chunks`
//! are offline.
//! `generate` and `bench` run in-process.

pub mod balance;
pub mod generate;
pub mod key;
pub mod model_chunks;
pub mod node;
pub mod tx;

use crate::cli::{Cli, Command};

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => node::dev(args).await,
        Command::Run(args) => node::run(*args).await,
        Command::Key(cmd) => key::run(cmd),
        Command::Tx(cmd) => tx::run(cmd).await,
        Command::Balance(args) => balance::run(args).await,
        Command::VerifyBalance(args) => balance::verify(args).await,
        #[cfg(feature = "bench")]
        Command::Bench(cmd) => neuroshard_bench::run(cmd).await,
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this neuroshard binary was built without benchmarks; build one with \
             `cargo build --release -p neuroshard-node --features bench`"
        ),
        Command::Generate(args) => generate::run(args).await,
        Command::ModelChunks(args) => model_chunks::run(args),
    }
}
