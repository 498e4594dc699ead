//! `neuroshard bench ...`: runs a benchmark from [`crate::bench`] on a blocking thread
//! (they use every core) and prints its report.

use crate::bench::ledger::{self, LedgerBenchOptions};
use crate::cli::BenchCommand;

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
    }
    Ok(())
}
