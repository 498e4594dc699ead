//! Proof of possession for a model's layers. Each transformer layer's bytes (its tensors'
//! data, in file order) are cut into fixed-size chunks and committed to by a Merkle root,
//! one root per layer (in the chain spec, [`LayerChunks`]). A liveness challenge names
//! one layer among those the worker serves and one chunk of it, both chosen from a seed
//! the worker could not know in advance and its own account; the worker answers with the
//! chunk's bytes and their Merkle path, which anyone can check against the layer's root
//! without holding the model. A node holding only its shard can answer, and it keeps
//! trees only for the layers it serves, so memory follows the shard, not the file.

use crate::crypto::{blake2_256, AccountId, Hash};
use crate::merkle;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};

/// Chunk size of the built-in chain specs: small, so an answer fits in ~1.6 KB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024;

const CHUNK_DOMAIN: &[u8] = b"neuroshard/chunk/v1";

/// Leaf hash of chunk `index` (the index is hashed in, so chunks cannot be swapped).
pub fn chunk_leaf(index: u64, chunk: &[u8]) -> Hash {
    let mut buf = Vec::with_capacity(CHUNK_DOMAIN.len() + 8 + chunk.len());
    buf.extend_from_slice(CHUNK_DOMAIN);
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(chunk);
    blake2_256(&buf)
}

/// The Merkle tree over a model file's chunks.
#[derive(Clone, Debug)]
pub struct ChunkTree {
    chunk_size: u32,
    levels: Vec<Vec<Hash>>,
}

impl ChunkTree {
    /// Reads a whole file (streaming) and builds its tree.
    pub fn from_reader(mut reader: impl Read, chunk_size: u32) -> io::Result<Self> {
        if chunk_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk size must be positive",
            ));
        }
        let mut leaves = Vec::new();
        let mut buf = vec![0u8; chunk_size as usize];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = reader.read(&mut buf[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            leaves.push(chunk_leaf(leaves.len() as u64, &buf[..filled]));
            if filled < buf.len() {
                break;
            }
        }
        Ok(Self {
            chunk_size,
            levels: merkle::levels(leaves),
        })
    }

    pub fn root(&self) -> Hash {
        merkle::root_of_levels(&self.levels)
    }

    pub fn num_chunks(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Merkle path of chunk `index`.
    pub fn proof(&self, index: u64) -> Vec<Option<Hash>> {
        merkle::proof(&self.levels, index as usize)
    }

    /// Byte range of chunk `index` in the file.
    pub fn chunk_range(&self, index: u64) -> std::ops::Range<u64> {
        let start = index * u64::from(self.chunk_size);
        start..start + u64::from(self.chunk_size)
    }
}

/// What the chain knows of one layer's bytes: the root of their chunk tree and how many
/// chunks there are.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct LayerChunks {
    pub root: Hash,
    pub num_chunks: u64,
}

impl From<&ChunkTree> for LayerChunks {
    fn from(tree: &ChunkTree) -> Self {
        Self {
            root: tree.root(),
            num_chunks: tree.num_chunks(),
        }
    }
}

/// The layer a worker serving `served` (its layers, each once) must show a chunk of for
/// a challenge `seed`; `None` when it serves none.
pub fn challenge_layer(seed: &Hash, worker: &AccountId, served: &[u16]) -> Option<u16> {
    if served.is_empty() {
        return None;
    }
    let digest = blake2_256(&(b"neuroshard/challenge-layer/v1", seed, worker).encode());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    let pick = u64::from_le_bytes(first) % served.len() as u64;
    served.get(pick as usize).copied()
}

/// The chunk (of the challenged layer) a worker must show for a challenge `seed`.
pub fn challenge_index(seed: &Hash, worker: &AccountId, num_chunks: u64) -> u64 {
    let digest = blake2_256(&(b"neuroshard/challenge/v1", seed, worker).encode());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first) % num_chunks.max(1)
}

/// Checks a chunk answer: the bytes have a plausible length and their Merkle path leads
/// to `root`.
pub fn verify_chunk(
    root: &Hash,
    num_chunks: u64,
    chunk_size: u32,
    index: u64,
    chunk: &[u8],
    proof: &[Option<Hash>],
) -> bool {
    let last = index + 1 == num_chunks;
    let size_ok = if last {
        !chunk.is_empty() && chunk.len() <= chunk_size as usize
    } else {
        chunk.len() == chunk_size as usize
    };
    size_ok && merkle::verify(root, chunk_leaf(index, chunk), index, num_chunks, proof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_verify_and_forgeries_do_not() {
        let file: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let tree = ChunkTree::from_reader(&file[..], 1024).unwrap();
        assert_eq!(tree.num_chunks(), 10);
        for index in [0u64, 5, 9] {
            let range = tree.chunk_range(index);
            let end = range.end.min(file.len() as u64) as usize;
            let chunk = &file[range.start as usize..end];
            let proof = tree.proof(index);
            assert!(verify_chunk(&tree.root(), 10, 1024, index, chunk, &proof));
            let mut forged = chunk.to_vec();
            forged[0] ^= 1;
            assert!(!verify_chunk(
                &tree.root(),
                10,
                1024,
                index,
                &forged,
                &proof
            ));
            assert!(!verify_chunk(
                &tree.root(),
                10,
                1024,
                (index + 1) % 10,
                chunk,
                &proof
            ));
        }
        // A short non-final chunk is refused even with a valid-looking path.
        assert!(!verify_chunk(
            &tree.root(),
            10,
            1024,
            0,
            &file[..10],
            &tree.proof(0)
        ));
        let worker = AccountId::from([3; 32]);
        assert!(challenge_index(&blake2_256(b"seed"), &worker, 10) < 10);
        assert_ne!(
            (0..20)
                .map(|i| challenge_index(&blake2_256(&[i]), &worker, 1000))
                .collect::<Vec<_>>(),
            vec![challenge_index(&blake2_256(&[0]), &worker, 1000); 20]
        );
    }

    #[test]
    fn the_challenged_layer_is_one_the_worker_serves_and_varies_with_the_seed() {
        let worker = AccountId::from([4; 32]);
        assert_eq!(challenge_layer(&blake2_256(b"s"), &worker, &[]), None);
        let served = [10u16, 11, 12, 20, 21];
        let picks: std::collections::BTreeSet<u16> = (0..200u32)
            .filter_map(|i| challenge_layer(&blake2_256(&i.to_le_bytes()), &worker, &served))
            .collect();
        assert!(picks.iter().all(|l| served.contains(l)));
        assert_eq!(
            picks.len(),
            served.len(),
            "every served layer gets challenged"
        );
    }
}
