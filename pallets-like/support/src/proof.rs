//! Read proofs: a Merkle path showing that `key = value` is a leaf of the state whose
//! root a header carries. A light client needs only the header and the proof.

use crate::state::{leaf_hash, StateDb};
use neuroshard_primitives::merkle;
use neuroshard_primitives::Hash;
use parity_scale_codec::{Decode, Encode};

/// Proof that one entry is in the state.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ReadProof {
    /// Position of the leaf in key order.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up; `None` where the node was promoted unpaired.
    pub siblings: Vec<Option<Hash>>,
}

impl StateDb {
    /// A proof for `key`, or `None` when the key is absent.
    pub fn read_proof(&self, key: &[u8]) -> Option<ReadProof> {
        let (leaves, index) = self.leaves_and_index(key)?;
        let leaf_count = leaves.len() as u64;
        let siblings = merkle::proof(&merkle::levels(leaves), index);
        Some(ReadProof {
            leaf_index: index as u64,
            leaf_count,
            siblings,
        })
    }
}

/// Checks that `key = value` is in the state with root `root`.
pub fn verify_read_proof(root: &Hash, key: &[u8], value: &[u8], proof: &ReadProof) -> bool {
    merkle::verify(
        root,
        leaf_hash(key, value),
        proof.leaf_index,
        proof.leaf_count,
        &proof.siblings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_entry_proves_and_tampering_fails(n in 1usize..70, pick in any::<prop::sample::Index>()) {
            let state = StateDb::from_pairs((0..n).map(|i| (format!("key{i:03}").into_bytes(), vec![i as u8; 3])));
            let i = pick.index(n);
            let key = format!("key{i:03}").into_bytes();
            let value = vec![i as u8; 3];
            let proof = state.read_proof(&key).unwrap();
            prop_assert!(verify_read_proof(&state.root(), &key, &value, &proof));
            prop_assert!(!verify_read_proof(&state.root(), &key, &[9, 9], &proof));
            let mut bad = proof.clone();
            bad.leaf_index = (bad.leaf_index + 1) % bad.leaf_count.max(2);
            if n > 1 {
                prop_assert!(!verify_read_proof(&state.root(), &key, &value, &bad));
            }
        }
    }
}
