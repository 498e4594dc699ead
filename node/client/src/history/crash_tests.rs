//! Pruning is crash-safe: a child process commits blocks with `--state-pruning`'s
//! pruning inside each commit, and is killed (SIGKILL) at whatever point of a commit it
//! has reached, three times over. After each kill the reopened database holds a whole
//! head block and exactly the states that head keeps: every kept block's state reads back
//! as the model says (point reads, scans and the root), every older one is refused as
//! discarded, and the oldest kept state is the one the head's commit pruned to (pruned
//! in the same transaction, it cannot lag behind the head nor run ahead of it).

use super::tests::assert_reads;
use crate::store::tests::block;
use crate::store::{StateAt, Store};
use neuroshard_primitives::BlockNumber;
use neuroshard_support::{StateChanges, StateDb};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Set for the child: the database it commits to.
const CHILD_DB: &str = "NEUROSHARD_PRUNING_CRASH_DB";
/// States kept, as `--state-pruning 4`.
const KEEP: u64 = 4;
/// Commits the parent waits for before each kill.
const COMMITS_PER_ROUND: u64 = 25;

/// Block `n`'s changes (keys 0..12, as the model's universe): deterministic, so the
/// parent can model any block's state.
fn changes_of(n: u64) -> StateChanges {
    let mut changes = StateChanges::new();
    changes.insert(vec![(n % 12) as u8], Some(vec![n as u8]));
    let other = vec![((n * 5 + 3) % 12) as u8];
    let value = (n % 3 != 0).then(|| vec![n as u8, 1]);
    changes.entry(other).or_insert(value);
    changes
}

const GENESIS: [(&[u8], &[u8]); 2] = [(&[0], &[0]), (&[5], &[1])];

/// The state after block `n`.
fn model(n: BlockNumber) -> StateDb {
    let mut state = StateDb::from_pairs(GENESIS.map(|(k, v)| (k.to_vec(), v.to_vec())));
    for m in 1..=n {
        state.apply(&changes_of(m));
    }
    state
}

/// The child's body (run only by the parent test, through the test binary): commits
/// blocks on top of whatever head the database has, each finalized and pruned to the
/// last `KEEP` in its own commit, reporting each on stdout once committed.
#[test]
#[ignore = "run by a_kill_during_commits_leaves_exactly_the_kept_states"]
fn child_commits_until_killed() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    if store.pointers().unwrap().is_none() {
        let genesis = block(0, Default::default());
        let pairs = GENESIS.map(|(k, v)| (k.to_vec(), v.to_vec()));
        store.init_genesis(&genesis, pairs).unwrap();
    }
    let mut parent = store.pointers().unwrap().unwrap().head;
    let head = store.block(&parent).unwrap().unwrap().header.number;
    let mut out = std::io::stdout().lock();
    // Bounded in case nobody kills it.
    for n in head + 1..head + 10_000 {
        let b = block(n, parent);
        let keep_from = (n + 1).saturating_sub(KEEP);
        store
            .commit_block(&b, &changes_of(n), Some(b.hash()), Some(keep_from))
            .unwrap();
        writeln!(out, "committed {n}").unwrap();
        out.flush().unwrap();
        parent = b.hash();
    }
}

/// Kills the child on drop, also when an assertion fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the child on `db`, waits for `COMMITS_PER_ROUND` commits and kills it
/// mid-way through a later one; returns the last block it reported committed.
fn run_child_and_kill(db: &Path) -> BlockNumber {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "history::crash_tests::child_commits_until_killed",
        ])
        .args(["--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DB, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut reported = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("committed ") {
            reported.push(n.parse::<BlockNumber>().unwrap());
            if reported.len() as u64 == COMMITS_PER_ROUND {
                break;
            }
        }
    }
    assert_eq!(
        reported.len() as u64,
        COMMITS_PER_ROUND,
        "the child stopped"
    );
    // Killed while committing the next blocks (it never waits between commits).
    drop(child);
    *reported.last().unwrap()
}

#[test]
fn a_kill_during_commits_leaves_exactly_the_kept_states() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    for _round in 0..3 {
        let reported = run_child_and_kill(&db);
        let store = Store::open(&db).unwrap();
        let head_hash = store.pointers().unwrap().unwrap().head;
        let head = store.block(&head_hash).unwrap().unwrap().header.number;
        assert!(head >= reported, "block #{reported} was reported committed");
        let keep_from = head + 1 - KEEP;
        assert_eq!(store.state_from().unwrap(), keep_from);
        for n in 0..=head {
            let hash = store.canonical_hash(n).unwrap().unwrap();
            if n < keep_from {
                assert!(
                    matches!(store.state_at(&hash).unwrap(), StateAt::Discarded(m) if m == n),
                    "#{n} should be discarded (head #{head})"
                );
            } else {
                assert_reads(&store, &hash, &model(n));
            }
        }
        // The undo records left are those of the kept blocks after the oldest.
        for n in keep_from.saturating_sub(2)..=head {
            let hash = store.canonical_hash(n).unwrap().unwrap();
            let undo = store.undo(&hash).unwrap();
            assert_eq!(undo.is_some(), n > keep_from, "undo of #{n}, head #{head}");
        }
    }
}
