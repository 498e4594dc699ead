//! `neuroshard bench state-history`: what versioned state costs on a long chain. A
//! synthetic chain (a state of `keys` accounts-sized values; every block changes
//! `changes` random keys and one hot key, as `System.Number` and `System.Events` change
//! every block) is committed to two real stores, an archive and one pruned to the last
//! `keep` blocks as `--state-pruning` does. Reported: commit time per block and database
//! size of both; the time to read one key at an old block through the version history
//! (one redb read transaction per query, as an RPC call does) against the baseline the
//! node used before, rebuilding the state at that depth from the head's state and the
//! undo records, and against an in-memory read of the head's state; and the time to
//! rebuild a whole old state (what a read proof needs) both ways.

use anyhow::{ensure, Context, Result};
use neuroshard_client::store::{StateAt, Store};
use neuroshard_primitives::{
    slot_lottery, AccountId, Block, BlockNumber, Digest, Hash, Header, PreDigest, Signature,
};
use neuroshard_runtime::{ReadState, StateChanges, StateDb};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};

/// What to measure (the command line of `bench state-history`).
#[derive(Clone, Debug, clap::Args)]
pub struct StateHistoryOptions {
    /// Blocks of the synthetic chain.
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u64,
    /// Keys in the state.
    #[arg(long, default_value_t = 20_000)]
    pub keys: usize,
    /// Random keys each block changes (besides one changed by every block).
    #[arg(long, default_value_t = 8)]
    pub changes: usize,
    /// States the pruned store keeps (`--state-pruning N`).
    #[arg(long, default_value_t = 256)]
    pub keep: u64,
    /// Timed reads per depth.
    #[arg(long, default_value_t = 2_000)]
    pub reads: usize,
}

fn key_of(i: usize) -> Vec<u8> {
    let mut key = b"bench/account/".to_vec();
    key.extend_from_slice(&(i as u64).to_be_bytes());
    key
}

fn value(rng: &mut StdRng) -> Option<Vec<u8>> {
    // About an AccountInfo's size; one change in 20 deletes the key.
    (rng.gen_range(0..20) != 0).then(|| (0..80).map(|_| rng.gen::<u8>()).collect())
}

fn synthetic_block(number: BlockNumber, parent: Hash) -> Block {
    Block {
        header: Header {
            parent_hash: parent,
            number,
            state_root: Hash::zero(),
            extrinsics_root: Hash::zero(),
            digest: Digest {
                pre: PreDigest {
                    slot: number,
                    author: AccountId::from([7; 32]),
                    vrf: slot_lottery::genesis_signature(),
                },
                seal: Signature::from_raw([0; 64]),
            },
        },
        extrinsics: vec![],
    }
}

/// The chain's change sets, the same for both stores.
fn change_sets(opts: &StateHistoryOptions) -> Vec<StateChanges> {
    let mut rng = StdRng::seed_from_u64(25);
    (1..=opts.blocks)
        .map(|number| {
            let mut changes: StateChanges = (0..opts.changes)
                .map(|_| (key_of(rng.gen_range(0..opts.keys)), value(&mut rng)))
                .collect();
            changes.insert(b"bench/hot".to_vec(), Some(number.to_le_bytes().to_vec()));
            changes
        })
        .collect()
}

struct Built {
    store: Store,
    hashes: Vec<Hash>,
    head_state: StateDb,
    per_block: Duration,
    bytes: u64,
}

/// Commits genesis and `sets` to a new store at `path`, pruning to `keep` if given.
fn build(
    path: &Path,
    genesis: &[(Vec<u8>, Vec<u8>)],
    sets: &[StateChanges],
    keep: Option<u64>,
) -> Result<Built> {
    let store = Store::open(path)?;
    let genesis_block = synthetic_block(0, Hash::zero());
    store.init_genesis(&genesis_block, genesis.iter().cloned())?;
    let mut head_state = StateDb::from_pairs(genesis.iter().cloned());
    let mut hashes = vec![genesis_block.hash()];
    let started = Instant::now();
    for (i, changes) in sets.iter().enumerate() {
        let number = i as u64 + 1;
        let block = synthetic_block(number, hashes[i]);
        store.commit_block(&block, changes, Some(block.hash()))?;
        if let Some(keep) = keep {
            store.prune_states(number.saturating_sub(keep - 1))?;
        }
        head_state.apply(changes);
        hashes.push(block.hash());
    }
    let per_block = started.elapsed() / sets.len().max(1) as u32;
    let bytes = std::fs::metadata(path)?.len();
    Ok(Built {
        store,
        hashes,
        head_state,
        per_block,
        bytes,
    })
}

/// The pre-versioning way: the head's state, with the undo records of the blocks
/// after `number` applied newest first.
fn rebuild_from_undo(built: &Built, number: BlockNumber) -> Result<StateDb> {
    let mut state = built.head_state.clone();
    for n in (number + 1..built.hashes.len() as u64).rev() {
        let undo = built
            .store
            .undo(&built.hashes[n as usize])?
            .context("undo")?;
        let changes: StateChanges = undo.into_iter().collect();
        state.apply(&changes);
    }
    Ok(state)
}

fn view_get(built: &Built, number: BlockNumber, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let StateAt::Kept(view) = built.store.state_at(&built.hashes[number as usize])? else {
        anyhow::bail!("state of #{number} not kept");
    };
    let value = view.get(key);
    view.check()?;
    Ok(value)
}

/// Mean time of `f` over `n` calls.
fn mean<T>(n: usize, mut f: impl FnMut(usize) -> Result<T>) -> Result<Duration> {
    let started = Instant::now();
    for i in 0..n {
        std::hint::black_box(f(i)?);
    }
    Ok(started.elapsed() / n.max(1) as u32)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the benchmark and prints its report.
pub fn run(opts: &StateHistoryOptions) -> Result<()> {
    ensure!(
        opts.blocks >= 2 && opts.keys > 0 && opts.keep >= 1 && opts.reads > 0,
        "blocks >= 2, keys, keep and reads must be positive"
    );
    let mut rng = StdRng::seed_from_u64(7);
    let genesis: Vec<_> = (0..opts.keys)
        .filter_map(|i| value(&mut rng).map(|v| (key_of(i), v)))
        .collect();
    let sets = change_sets(opts);
    let dir = tempfile::tempdir()?;
    let archive = build(&dir.path().join("archive.redb"), &genesis, &sets, None)?;
    let pruned = build(
        &dir.path().join("pruned.redb"),
        &genesis,
        &sets,
        Some(opts.keep),
    )?;
    println!(
        "state history: {} blocks, {} keys, {} + 1 hot key changed per block, CPU: {}",
        opts.blocks,
        opts.keys,
        opts.changes,
        crate::kernels::cpu_name()
    );
    println!(
        "  commit per block: archive {:.0} us, pruned to {} {:.0} us ({:.2}x)",
        us(archive.per_block),
        opts.keep,
        us(pruned.per_block),
        pruned.per_block.as_secs_f64() / archive.per_block.as_secs_f64()
    );
    println!(
        "  database: archive {:.1} MiB ({} versions), pruned {:.1} MiB ({} versions)",
        archive.bytes as f64 / (1 << 20) as f64,
        archive.store.history_len()?,
        pruned.bytes as f64 / (1 << 20) as f64,
        pruned.store.history_len()?
    );
    let head = opts.blocks;
    let keys: Vec<Vec<u8>> = (0..opts.reads)
        .map(|_| key_of(rng.gen_range(0..opts.keys)))
        .collect();
    let in_memory = mean(opts.reads, |i| Ok(archive.head_state.get(&keys[i])))?;
    println!(
        "  point read at the head, in memory: {:.2} us",
        us(in_memory)
    );
    for depth in [1, 100, 1000, head - 1] {
        let depth = depth.min(head - 1);
        let number = head - depth;
        let history = mean(opts.reads, |i| view_get(&archive, number, &keys[i]))?;
        // The baseline rebuilds per query, as the old RPC did: fewer rounds when slow.
        let rounds = (opts.reads / (1 + depth as usize / 10)).max(1);
        let undo = mean(rounds, |i| {
            Ok(rebuild_from_undo(&archive, number)?.get(&keys[i]))
        })?;
        println!(
            "  point read {depth} blocks back: history {:.1} us, undo rebuild {:.0} us \
             ({:.0}x faster), in-memory head read {:.2} us",
            us(history),
            us(undo),
            undo.as_secs_f64() / history.as_secs_f64(),
            us(in_memory)
        );
    }
    // A whole old state, as a read proof needs it, 100 blocks back.
    let number = head - 100.min(head - 1);
    let from_history = mean(3, |_| {
        let StateAt::Kept(view) = archive.store.state_at(&archive.hashes[number as usize])? else {
            anyhow::bail!("not kept");
        };
        Ok(StateDb::from_pairs(view.pairs()?).root())
    })?;
    let from_undo = mean(3, |_| Ok(rebuild_from_undo(&archive, number)?.root()))?;
    println!(
        "  whole state {} blocks back (read proof): history {:.1} ms, undo rebuild {:.1} ms \
         ({:.2}x)",
        head - number,
        from_history.as_secs_f64() * 1e3,
        from_undo.as_secs_f64() * 1e3,
        from_undo.as_secs_f64() / from_history.as_secs_f64()
    );
    // Both stores answer the same at the oldest state the pruned one keeps.
    let oldest = head + 1 - opts.keep.min(head);
    for key in keys.iter().take(100) {
        ensure!(
            view_get(&archive, oldest, key)? == view_get(&pruned, oldest, key)?,
            "archive and pruned stores disagree at #{oldest}"
        );
    }
    Ok(())
}
