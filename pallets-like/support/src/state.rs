//! The committed key-value state and its root. Every `(key, value)` pair is a leaf of a
//! binary Merkle tree in key order, so the root in each header commits to the whole
//! state and any single entry can be proven against it (see [`crate::proof`]).
//!
//! Leaf hashes are cached per entry; the root is recomputed (n - 1 hashes) only when
//! the state changed. That is fine for the state sizes of this ledger (accounts,
//! workers, per-epoch counters); an incremental tree can replace it behind this API.

use neuroshard_primitives::{blake2_256, merkle, Hash};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Read access to state: committed ([`StateDb`]) or with pending changes
/// ([`crate::Overlay`]).
pub trait ReadState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// Writes to apply to a state: `Some(value)` sets, `None` deletes.
pub type StateChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Clone, Debug)]
struct Entry {
    value: Vec<u8>,
    leaf: Hash,
}

/// The committed state.
#[derive(Clone, Debug, Default)]
pub struct StateDb {
    entries: BTreeMap<Vec<u8>, Entry>,
    root: OnceLock<Hash>,
}

/// Leaf of one entry (tag 0; inner nodes use tag 1, see [`merkle`]).
pub(crate) fn leaf_hash(key: &[u8], value: &[u8]) -> Hash {
    use parity_scale_codec::Encode;
    blake2_256(&(0u8, key, value).encode())
}

impl StateDb {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a state from stored pairs (e.g. when the node loads its database).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let mut state = Self::new();
        let changes = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        state.apply(&changes);
        state
    }

    /// Applies a change set.
    pub fn apply(&mut self, changes: &StateChanges) {
        if changes.is_empty() {
            return;
        }
        for (key, value) in changes {
            match value {
                Some(value) => {
                    let leaf = leaf_hash(key, value);
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            value: value.clone(),
                            leaf,
                        },
                    );
                }
                None => {
                    self.entries.remove(key);
                }
            }
        }
        self.root = OnceLock::new();
    }

    /// The root committing to every entry (all zeros for the empty state).
    pub fn root(&self) -> Hash {
        *self
            .root
            .get_or_init(|| merkle::root(self.entries.values().map(|e| e.leaf).collect()))
    }

    /// The root the state would have after `changes`, without keeping them: merges the
    /// cached leaves with the changed ones, hashing only what changed.
    pub fn root_after(&self, changes: &StateChanges) -> Hash {
        use std::cmp::Ordering;
        if changes.is_empty() {
            return self.root();
        }
        let mut leaves = Vec::with_capacity(self.entries.len() + changes.len());
        let mut base = self.entries.iter().peekable();
        let mut changed = changes.iter().peekable();
        let push_change = |leaves: &mut Vec<Hash>, key: &[u8], value: &Option<Vec<u8>>| {
            if let Some(value) = value {
                leaves.push(leaf_hash(key, value));
            }
        };
        loop {
            match (base.peek(), changed.peek()) {
                (None, None) => break,
                (Some((_, entry)), None) => {
                    leaves.push(entry.leaf);
                    base.next();
                }
                (None, Some((key, value))) => {
                    push_change(&mut leaves, key, value);
                    changed.next();
                }
                (Some((base_key, entry)), Some((key, value))) => match base_key.cmp(key) {
                    Ordering::Less => {
                        leaves.push(entry.leaf);
                        base.next();
                    }
                    Ordering::Equal => {
                        push_change(&mut leaves, key, value);
                        base.next();
                        changed.next();
                    }
                    Ordering::Greater => {
                        push_change(&mut leaves, key, value);
                        changed.next();
                    }
                },
            }
        }
        merkle::root(leaves)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_slice(), e.value.as_slice()))
    }

    /// Leaf hashes in key order with the index of `key`, for proofs.
    pub(crate) fn leaves_and_index(&self, key: &[u8]) -> Option<(Vec<Hash>, usize)> {
        let index = self.entries.keys().position(|k| k.as_slice() == key)?;
        Some((self.entries.values().map(|e| e.leaf).collect(), index))
    }
}

impl ReadState for StateDb {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).map(|e| e.value.clone())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn root_commits_to_every_entry() {
        let a = StateDb::from_pairs([
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ]);
        let b = StateDb::from_pairs([
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"3".to_vec()),
        ]);
        let c = StateDb::from_pairs([(b"a".to_vec(), b"1".to_vec())]);
        assert_ne!(a.root(), b.root());
        assert_ne!(a.root(), c.root());
        assert_eq!(StateDb::new().root(), Hash::zero());
    }

    proptest! {
        /// The root depends only on the final contents, not on the order of writes.
        #[test]
        fn root_is_order_independent(pairs in proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::collection::vec(any::<u8>(), 0..8), 0..40)) {
            let forward = StateDb::from_pairs(pairs.clone());
            let mut backward = StateDb::new();
            for (k, v) in pairs.iter().rev() {
                backward.apply(&[(k.clone(), Some(v.clone()))].into_iter().collect());
            }
            prop_assert_eq!(forward.root(), backward.root());
        }

        /// `root_after` equals the root of actually applying the changes.
        #[test]
        fn root_after_matches_apply(
            base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..3), any::<u8>(), 0..20),
            changes in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..3), proptest::option::of(any::<u8>()), 0..20)) {
            let state = StateDb::from_pairs(base.into_iter().map(|(k, v)| (k, vec![v])));
            let changes: StateChanges = changes.into_iter().map(|(k, v)| (k, v.map(|v| vec![v]))).collect();
            let predicted = state.root_after(&changes);
            let mut applied = state.clone();
            applied.apply(&changes);
            prop_assert_eq!(predicted, applied.root());
        }
    }
}
