//! The version history against a model: every kept block's state reads back exactly
//! (point reads and prefix scans), after reverts and across the pruning boundary.

use crate::store::tests::block;
use crate::store::{StateAt, Store};
use neuroshard_primitives::Hash;
use neuroshard_support::{ReadState, StateChanges, StateDb};
use proptest::prelude::*;

/// The store's state after `hash`, as a view (panics unless kept).
fn view(store: &Store, hash: &Hash) -> super::StateView {
    match store.state_at(hash).unwrap() {
        StateAt::Kept(view) => *view,
        StateAt::Discarded(n) => panic!("block #{n} discarded"),
        StateAt::Unknown => panic!("block unknown"),
    }
}

/// Every key of the model's universe (0..12, one byte) reads as in `expected`, and the
/// prefix scans list exactly its entries.
fn assert_reads(store: &Store, hash: &Hash, expected: &StateDb) {
    let view = view(store, hash);
    for k in 0u8..12 {
        assert_eq!(view.get(&[k]), expected.get(&[k]), "key {k}");
    }
    let pairs: Vec<_> = expected
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(view.scan_prefix(&[]), pairs);
    assert_eq!(
        StateDb::from_pairs(view.pairs().unwrap()).root(),
        expected.root()
    );
    view.check().unwrap();
}

/// Commits `blocks` (one change set each) on top of `parent` (block number `first - 1`);
/// returns their hashes and the model's state after each.
fn commit_all(
    store: &Store,
    parent: Hash,
    first: u64,
    base: &StateDb,
    blocks: &[StateChanges],
    slot_salt: u64,
) -> (Vec<Hash>, Vec<StateDb>) {
    let (mut parent, mut model) = (parent, base.clone());
    let (mut hashes, mut states) = (Vec::new(), Vec::new());
    for (i, changes) in blocks.iter().enumerate() {
        let mut b = block(first + i as u64, parent);
        b.header.digest.pre.slot += slot_salt;
        store.commit_block(&b, changes, None).unwrap();
        model.apply(changes);
        parent = b.hash();
        hashes.push(parent);
        states.push(model.clone());
    }
    (hashes, states)
}

fn changes_strategy() -> impl Strategy<Value = Vec<StateChanges>> {
    proptest::collection::vec(
        proptest::collection::btree_map(0u8..12, proptest::option::of(0u8..4), 0..6).prop_map(
            |m| {
                m.into_iter()
                    .map(|(k, v)| (vec![k], v.map(|v| vec![v])))
                    .collect::<StateChanges>()
            },
        ),
        2..10,
    )
}

fn genesis_store(dir: &tempfile::TempDir) -> (Store, Hash, StateDb) {
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let genesis = block(0, Hash::zero());
    let pairs = [(vec![0], vec![0]), (vec![5], vec![1])];
    store.init_genesis(&genesis, pairs.clone()).unwrap();
    (store, genesis.hash(), StateDb::from_pairs(pairs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Every block's state reads back; after reverting to a block and committing a
    /// different branch, the kept blocks read the new branch and the reverted ones are
    /// unknown.
    #[test]
    fn every_block_reads_back_across_a_reorg(
        blocks in changes_strategy(),
        fork in changes_strategy(),
        at in 0usize..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, genesis, base) = genesis_store(&dir);
        let (hashes, states) = commit_all(&store, genesis, 1, &base, &blocks, 0);
        assert_reads(&store, &genesis, &base);
        for (hash, state) in hashes.iter().zip(&states) {
            assert_reads(&store, hash, state);
        }
        // Revert to block `target` (0 = genesis) and build another branch on it.
        let target = at % blocks.len();
        let (target_hash, target_state) = match target {
            0 => (genesis, base.clone()),
            n => (hashes[n - 1], states[n - 1].clone()),
        };
        let head = store.block(hashes.last().unwrap()).unwrap().unwrap();
        store.revert_to(&target_hash, &head).unwrap();
        let (fork_hashes, fork_states) =
            commit_all(&store, target_hash, target as u64 + 1, &target_state, &fork, 1000);
        for hash in &hashes[target..] {
            prop_assert!(matches!(store.state_at(hash).unwrap(), StateAt::Unknown));
        }
        for (hash, state) in hashes[..target].iter().zip(&states) {
            assert_reads(&store, hash, state);
        }
        for (hash, state) in fork_hashes.iter().zip(&fork_states) {
            assert_reads(&store, hash, state);
        }
    }

    /// Pruning to block `keep_from`: the states before it are discarded, the ones from it
    /// on read exactly as before, the history shrinks, and a revert to the oldest kept
    /// block still restores its state.
    #[test]
    fn pruning_discards_only_older_states(
        blocks in changes_strategy(),
        keep in 1usize..9,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, genesis, base) = genesis_store(&dir);
        let (hashes, states) = commit_all(&store, genesis, 1, &base, &blocks, 0);
        let keep_from = (keep % blocks.len()) as u64 + 1;
        let before = store.history_len().unwrap();
        // In two steps, as a running node prunes block by block.
        store.prune_states(keep_from - 1).unwrap();
        store.prune_states(keep_from).unwrap();
        prop_assert_eq!(store.state_from().unwrap(), keep_from);
        prop_assert!(store.history_len().unwrap() <= before);
        prop_assert!(matches!(
            store.state_at(&genesis).unwrap(),
            StateAt::Discarded(0)
        ));
        for (i, (hash, state)) in hashes.iter().zip(&states).enumerate() {
            if (i as u64 + 1) < keep_from {
                prop_assert!(matches!(store.state_at(hash).unwrap(), StateAt::Discarded(_)));
            } else {
                assert_reads(&store, hash, state);
            }
        }
        let oldest = hashes[keep_from as usize - 1];
        let head = store.block(hashes.last().unwrap()).unwrap().unwrap();
        let applied = store.revert_to(&oldest, &head).unwrap();
        let mut state = states.last().unwrap().clone();
        for changes in &applied {
            state.apply(changes);
        }
        prop_assert_eq!(state.root(), states[keep_from as usize - 1].root());
        prop_assert_eq!(
            StateDb::from_pairs(store.state_pairs().unwrap()).root(),
            state.root()
        );
        assert_reads(&store, &oldest, &states[keep_from as usize - 1]);
    }
}

/// A key changed in every block keeps one version per kept block, not per block ever.
#[test]
fn pruning_bounds_the_versions_of_a_hot_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, genesis, base) = genesis_store(&dir);
    let blocks: Vec<StateChanges> = (0u8..50)
        .map(|i| [(vec![7], Some(vec![i]))].into_iter().collect())
        .collect();
    let (hashes, states) = commit_all(&store, genesis, 1, &base, &blocks, 0);
    assert_eq!(store.history_len().unwrap(), 2 + 50);
    for number in 1..=45 {
        store.prune_states(number).unwrap();
    }
    // Blocks 45..=50 keep key 7's versions; genesis's two keys stay (never changed).
    assert_eq!(store.history_len().unwrap(), 2 + 6);
    assert_reads(&store, &hashes[44], &states[44]);
    assert_reads(&store, &hashes[49], &states[49]);
}
