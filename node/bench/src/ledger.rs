//! `neuroshard bench ledger`: how many signed inference receipts per second the ledger
//! verifies and applies when importing a block (extrinsic checks, receipt checks, escrowed
//! fee payment,
//! schnorrkel batch verification of worker and client signatures on all cores, tallies,
//! state root), against a baseline of verifying the same signatures one at a time on
//! one core.

use anyhow::{ensure, Context, Result};
use neuroshard_chain_spec::ChainSpec;
use neuroshard_primitives::crypto::{keypair_from_uri, verify};
use neuroshard_primitives::{
    blake2_256, slot_lottery, AccountId, Call, Keypair, LayerRange, PonwCall, Receipt, ReceiptBody,
    SignedExtrinsic, UNIT,
};
use neuroshard_runtime::Runtime;
use rayon::prelude::*;
use sp_core::Pair as _;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct LedgerBenchOptions {
    /// Receipts in the benchmark block.
    pub receipts: usize,
    /// Receipts per `submit_receipts` extrinsic.
    pub batch: usize,
    /// Timed repetitions of the block import (the best is reported).
    pub rounds: usize,
}

impl Default for LedgerBenchOptions {
    fn default() -> Self {
        Self {
            receipts: 20_000,
            batch: 2_000,
            rounds: 3,
        }
    }
}

/// Measured figures.
#[derive(Clone, Debug)]
pub struct LedgerBenchReport {
    pub receipts: usize,
    pub import_receipts_per_s: f64,
    pub author_receipts_per_s: f64,
    pub baseline_receipts_per_s: f64,
    pub threads: usize,
}

struct Fixture {
    spec: ChainSpec,
    workers: Vec<(Keypair, AccountId)>,
    clients: Vec<Keypair>,
}

fn key(uri: &str) -> Result<(Keypair, AccountId)> {
    let pair = keypair_from_uri(uri).with_context(|| format!("deriving {uri}"))?;
    let account = pair.public().into();
    Ok((pair, account))
}

/// The dev chain with 3 x 8 extra workers (8 per shard of the standard shard map).
fn fixture() -> Result<Fixture> {
    let mut spec = neuroshard_chain_spec::load("dev")?;
    let mut workers = Vec::new();
    let bond = spec.genesis.params.ponw.worker_bond;
    for (s, shard) in spec.model.shards.clone().into_iter().enumerate() {
        for i in 0..8 {
            let (pair, account) = key(&format!("//bench-worker-{s}-{i}"))?;
            // Registration at genesis reserves the worker bond.
            spec.genesis.balances.push((account.clone(), bond));
            spec.genesis.workers.push((account.clone(), vec![shard]));
            workers.push((pair, account));
        }
    }
    let clients = (0..16)
        .map(|i| key(&format!("//bench-client-{i}")).map(|k| k.0))
        .collect::<Result<Vec<_>>>()?;
    for client in &clients {
        spec.genesis
            .balances
            .push((client.public().into(), 1_000_000 * UNIT));
    }
    Ok(Fixture {
        spec,
        workers,
        clients,
    })
}

fn receipts(f: &Fixture, count: usize) -> Vec<Receipt> {
    let shards = &f.spec.model.shards;
    let model = f.spec.model.blake2_256;
    (0..count)
        .into_par_iter()
        .map(|i| {
            let s = i % shards.len();
            let w = s * 8 + (i / shards.len()) % 8;
            let (worker_pair, worker) = &f.workers[w];
            let client = &f.clients[i % f.clients.len()];
            let layers: LayerRange = shards[s];
            let body = ReceiptBody {
                worker: worker.clone(),
                client: client.public().into(),
                model,
                layers,
                session: blake2_256(&(i as u64).to_le_bytes()).as_bytes()[..16]
                    .try_into()
                    .expect("16 bytes"),
                epoch: 0,
                seq: 0,
                position_start: 0,
                position_end: 32,
                commitment: blake2_256(&(i as u64).to_be_bytes()),
                input_commitment: blake2_256(&(i as u64).to_le_bytes()),
                adapter: None,
            };
            Receipt::sign(body, worker_pair, client)
        })
        .collect()
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: &LedgerBenchOptions) -> Result<LedgerBenchReport> {
    ensure!(
        opts.receipts > 0 && opts.batch > 0 && opts.rounds > 0,
        "receipts, batch and rounds must be positive"
    );
    let f = fixture()?;
    ensure!(
        opts.batch <= f.spec.genesis.params.ponw.max_receipts_per_batch as usize,
        "batch exceeds the chain's max_receipts_per_batch"
    );
    let (mut state, genesis) = Runtime::build_genesis(&f.spec.genesis)?;
    let runtime = Runtime::new(genesis.hash());
    // Block 1: every client locks escrow to pay for the receipts it counter-signs.
    let deposits = f
        .clients
        .iter()
        .map(|c| {
            let call = Call::Ponw(PonwCall::DepositEscrow {
                amount: 500_000 * UNIT,
            });
            SignedExtrinsic::sign(c, &runtime.genesis_hash(), 0, call)
        })
        .collect();
    let (alice, _) = key("//Alice")?;
    let setup = runtime.build_block(
        &state,
        &genesis,
        1,
        AccountId::from(alice.public()),
        slot_lottery::sign(&alice, &Runtime::randomness(&state)?, 1),
        deposits,
    )?;
    ensure!(
        setup.rejected.is_empty(),
        "escrow deposits were rejected: {:?}",
        setup.rejected.first()
    );
    state.apply(&setup.changes);
    let parent = setup.block.header;
    eprintln!(
        "signing {} receipts (worker + client signatures)...",
        opts.receipts
    );
    let all = receipts(&f, opts.receipts);
    let extrinsics: Vec<SignedExtrinsic> = all
        .chunks(opts.batch)
        .enumerate()
        .map(|(nonce, chunk)| {
            let call = Call::Ponw(PonwCall::SubmitReceipts {
                receipts: chunk.to_vec(),
            });
            SignedExtrinsic::sign(&alice, &runtime.genesis_hash(), nonce as u64, call)
        })
        .collect();

    let started = Instant::now();
    let vrf = slot_lottery::sign(&alice, &Runtime::randomness(&state)?, 2);
    let built = runtime.build_block(
        &state,
        &parent,
        2,
        AccountId::from(alice.public()),
        vrf,
        extrinsics,
    )?;
    let author_s = started.elapsed().as_secs_f64();
    ensure!(
        built.rejected.is_empty(),
        "benchmark extrinsics were rejected: {:?}",
        built.rejected.first()
    );
    let mut block = built.block;
    block.header.seal_with(&alice);

    let mut best = f64::MAX;
    for round in 0..opts.rounds {
        let started = Instant::now();
        let executed = runtime.execute_block(&state, &parent, &block)?;
        let secs = started.elapsed().as_secs_f64();
        ensure!(!executed.changes.is_empty(), "import produced no changes");
        eprintln!("  import round {}: {:.3} s", round + 1, secs);
        best = best.min(secs);
    }

    eprintln!("baseline: verifying the same signatures one at a time on one core...");
    let started = Instant::now();
    let mut valid = 0usize;
    for r in &all {
        for m in r.signed_messages() {
            valid += usize::from(verify(m.signature, &m.message, m.signer));
        }
    }
    let baseline_s = started.elapsed().as_secs_f64();
    ensure!(valid == 2 * all.len(), "baseline found invalid signatures");

    let report = LedgerBenchReport {
        receipts: opts.receipts,
        import_receipts_per_s: opts.receipts as f64 / best,
        author_receipts_per_s: opts.receipts as f64 / author_s,
        baseline_receipts_per_s: opts.receipts as f64 / baseline_s,
        threads: rayon::current_num_threads(),
    };
    println!(
        "ledger benchmark: {} receipts in one block, {} threads",
        report.receipts, report.threads
    );
    println!(
        "  block import (verify + apply + state root): {:>10.0} receipts/s",
        report.import_receipts_per_s
    );
    println!(
        "  block authoring (same work, builder path):  {:>10.0} receipts/s",
        report.author_receipts_per_s
    );
    println!(
        "  baseline (one-by-one sr25519, one core):     {:>10.0} receipts/s",
        report.baseline_receipts_per_s
    );
    println!(
        "  ratio import / baseline: {:.2}x",
        report.import_receipts_per_s / report.baseline_receipts_per_s
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's chain must accept its own workload (a genesis or pallet change that
    /// makes the receipts invalid would otherwise only show when someone runs it).
    #[test]
    fn a_small_block_of_receipts_imports() {
        let report = run(&LedgerBenchOptions {
            receipts: 64,
            batch: 32,
            rounds: 1,
        })
        .unwrap();
        assert_eq!(report.receipts, 64);
        assert!(report.import_receipts_per_s > 0.0);
    }
}
