//! The `neuroshard` binary: parses the command line, sets up logging (to stderr, so
//! command output on stdout stays clean) and runs the command.

use clap::Parser;
use neuroshard_node::{cli::Cli, commands};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    commands::run(cli).await
}
