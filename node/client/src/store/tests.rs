//! The store's own tests: commits survive reopening, and state and undo records follow
//! the changes.

use super::*;
use neuroshard_primitives::{AccountId, Header, Signature};

pub(crate) fn block(number: u64, parent: Hash) -> Block {
    Block {
        header: Header {
            parent_hash: parent,
            number,
            state_root: Hash::repeat_byte(number as u8),
            extrinsics_root: Hash::zero(),
            digest: neuroshard_primitives::Digest {
                pre: neuroshard_primitives::PreDigest {
                    slot: number,
                    author: AccountId::from([1; 32]),
                    vrf: neuroshard_primitives::slot_lottery::genesis_signature(),
                },
                seal: Signature::from_raw([0; 64]),
            },
        },
        extrinsics: vec![],
    }
}

#[test]
fn commit_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").join("chain.redb");
    let genesis = block(0, Hash::zero());
    let b1 = block(1, genesis.hash());
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.pointers().unwrap(), None);
        store
            .init_genesis(&genesis, [(b"a".to_vec(), b"1".to_vec())])
            .unwrap();
        let changes: StateChanges = [(b"a".to_vec(), None), (b"b".to_vec(), Some(b"2".to_vec()))]
            .into_iter()
            .collect();
        store
            .commit_block(&b1, &changes, Some(b1.hash()), None)
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let p = store.pointers().unwrap().unwrap();
    assert_eq!(p.genesis, genesis.hash());
    assert_eq!(p.head, b1.hash());
    assert_eq!(p.finalized, b1.hash());
    assert_eq!(
        store.state_pairs().unwrap(),
        vec![(b"b".to_vec(), b"2".to_vec())]
    );
    assert_eq!(store.canonical_hash(1).unwrap(), Some(b1.hash()));
    assert_eq!(store.block(&b1.hash()).unwrap(), Some(b1.clone()));
    let undo = store.undo(&b1.hash()).unwrap().unwrap();
    assert_eq!(
        undo,
        vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// The stored state always equals the changes applied in order, and each block's
    /// undo record takes the state back to its parent's.
    #[test]
    fn state_and_undo_follow_the_changes(
        blocks in proptest::collection::vec(
            proptest::collection::btree_map(0u8..12, proptest::option::of(0u8..4), 0..6),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let genesis = block(0, Hash::zero());
        store.init_genesis(&genesis, [(vec![0], vec![0])]).unwrap();
        let mut model = neuroshard_support::StateDb::from_pairs([(vec![0], vec![0])]);
        let mut history = vec![model.clone()];
        let mut parent = genesis.hash();
        let mut hashes = Vec::new();
        for (i, changes) in blocks.iter().enumerate() {
            let changes: StateChanges = changes
                .iter()
                .map(|(k, v)| (vec![*k], v.map(|v| vec![v])))
                .collect();
            let b = block(i as u64 + 1, parent);
            store.commit_block(&b, &changes, None, None).unwrap();
            model.apply(&changes);
            history.push(model.clone());
            parent = b.hash();
            hashes.push(parent);
        }
        let stored = neuroshard_support::StateDb::from_pairs(store.state_pairs().unwrap());
        proptest::prop_assert_eq!(stored.root(), model.root());
        let mut state = stored;
        for (i, hash) in hashes.iter().enumerate().rev() {
            let undo: StateChanges = store.undo(hash).unwrap().unwrap().into_iter().collect();
            state.apply(&undo);
            proptest::prop_assert_eq!(state.root(), history[i].root());
        }
    }
}
