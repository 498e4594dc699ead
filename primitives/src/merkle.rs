//! The one binary Merkle tree every commitment in NeuroShard uses: extrinsics roots,
//! the state root and its read proofs, and the model-chunk root behind liveness
//! challenges. Leaves are hashes the caller computes with its own domain tag; inner
//! nodes are `blake2_256(0x01 ++ left ++ right)`; an odd node is promoted unchanged;
//! the empty tree has the all-zero root.

use crate::crypto::{blake2_256, Hash};

/// Tag of inner nodes; leaf hashes must use other tags so the two cannot be confused.
const NODE_TAG: u8 = 1;

/// Hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_TAG;
    buf[1..33].copy_from_slice(left.as_bytes());
    buf[33..].copy_from_slice(right.as_bytes());
    blake2_256(&buf)
}

/// Every level of the tree, leaves first, root last.
pub fn levels(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves];
    while levels.last().map_or(0, Vec::len) > 1 {
        let below = levels.last().expect("at least the leaf level");
        let next = below
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => node_hash(a, b),
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        levels.push(next);
    }
    levels
}

/// Root of a finished tree (from [`levels`]).
pub fn root_of_levels(levels: &[Vec<Hash>]) -> Hash {
    levels
        .last()
        .and_then(|top| top.first().copied())
        .unwrap_or_else(Hash::zero)
}

/// Root over `leaves`.
pub fn root(leaves: Vec<Hash>) -> Hash {
    root_of_levels(&levels(leaves))
}

/// Sibling path of leaf `index` (bottom up; `None` where the node had no sibling).
pub fn proof(levels: &[Vec<Hash>], index: usize) -> Vec<Option<Hash>> {
    let mut siblings = Vec::with_capacity(levels.len());
    let mut i = index;
    for level in &levels[..levels.len().saturating_sub(1)] {
        siblings.push(level.get(i ^ 1).copied());
        i /= 2;
    }
    siblings
}

/// Checks that `leaf` is leaf number `index` of a `count`-leaf tree with root `root`.
pub fn verify(root: &Hash, leaf: Hash, index: u64, count: u64, siblings: &[Option<Hash>]) -> bool {
    if index >= count {
        return false;
    }
    let mut hash = leaf;
    let mut index = index;
    let mut width = count;
    for sibling in siblings {
        if width <= 1 {
            return false;
        }
        let has_sibling = (index ^ 1) < width;
        hash = match (sibling, has_sibling) {
            (Some(s), true) if index.is_multiple_of(2) => node_hash(&hash, s),
            (Some(s), true) => node_hash(s, &hash),
            (None, false) => hash,
            _ => return false,
        };
        index /= 2;
        width = width.div_ceil(2);
    }
    width == 1 && &hash == root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| blake2_256(&[0, i as u8, (i >> 8) as u8]))
            .collect()
    }

    #[test]
    fn root_depends_on_order_and_content() {
        let l = leaves(3);
        assert_ne!(root(l.clone()), root(vec![l[1], l[0], l[2]]));
        assert_ne!(root(l[..2].to_vec()), root(l.clone()));
        assert_eq!(root(vec![l[0]]), l[0]);
        assert_eq!(root(vec![]), Hash::zero());
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_nothing_else_does(n in 1usize..300, pick in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let tree = levels(l.clone());
            let r = root_of_levels(&tree);
            let i = pick.index(n);
            let path = proof(&tree, i);
            prop_assert!(verify(&r, l[i], i as u64, n as u64, &path));
            prop_assert!(!verify(&r, blake2_256(b"other"), i as u64, n as u64, &path));
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify(&r, l[i], j as u64, n as u64, &path));
            }
            prop_assert!(!verify(&r, l[i], n as u64, n as u64, &path));
        }
    }
}
