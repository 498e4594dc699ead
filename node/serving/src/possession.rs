//! What this node shows to prove it holds the layers it serves (half of every uptime
//! minute; see `neuroshard_ponw::liveness` and `neuroshard_primitives::model_chunks`).
//! The chain commits to one chunk tree per transformer layer, over that layer's tensor
//! bytes in file order. At startup the node hashes the layers it serves, and only those,
//! into their trees and checks each root against the chain's; the trees stay in memory
//! (about 32 bytes per KiB of the served layers), so answering a minute's challenge is
//! one read of a chunk and a path from memory.

use anyhow::{bail, ensure, Context};
use neuroshard_client::hex_hash;
use neuroshard_inference::models::parts::{FileExtent, GgufParts};
use neuroshard_primitives::model_chunks::{ChunkTree, LayerChunks};
use neuroshard_primitives::{Hash, LayerRange};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The bytes of one layer: a run of extents read as one stream.
#[derive(Clone, Debug)]
struct LayerBytes {
    extents: Vec<FileExtent>,
}

impl LayerBytes {
    fn len(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Reads `len` bytes from `offset` of the layer's stream (fewer at its end).
    fn read(&self, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let (mut skip, mut want) = (offset, len);
        for extent in &self.extents {
            if want == 0 {
                break;
            }
            if skip >= extent.len {
                skip -= extent.len;
                continue;
            }
            let take = want.min(extent.len - skip);
            let mut file = File::open(&extent.path)?;
            file.seek(SeekFrom::Start(extent.start + skip))?;
            let before = out.len();
            file.take(take).read_to_end(&mut out)?;
            if (out.len() - before) as u64 != take {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} is shorter than its header says", extent.path.display()),
                ));
            }
            skip = 0;
            want -= take;
        }
        Ok(out)
    }

    /// The layer's chunk tree, read in chunk-sized pieces.
    fn tree(&self, chunk_size: u32) -> io::Result<ChunkTree> {
        let mut reader: Box<dyn Read> = Box::new(io::empty());
        for extent in &self.extents {
            let mut file = File::open(&extent.path)?;
            file.seek(SeekFrom::Start(extent.start))?;
            reader = Box::new(reader.chain(io::BufReader::new(file).take(extent.len)));
        }
        let mut counted = CountingReader {
            inner: reader,
            read: 0,
        };
        let tree = ChunkTree::from_reader(&mut counted, chunk_size)?;
        if counted.read != self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the model file is shorter than its header says",
            ));
        }
        Ok(tree)
    }
}

/// A reader that counts what it hands out.
struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The layers this node serves, with the chunk trees that prove it holds them.
pub struct ModelPossession {
    path: PathBuf,
    chunk_size: u32,
    layers: BTreeMap<u16, (LayerBytes, ChunkTree)>,
}

impl ModelPossession {
    /// Hashes the layers of `shards` in the model at `path` into their chunk trees and
    /// checks each root against the chain's (`layer_chunks`, one per layer).
    pub fn open(
        path: &Path,
        chunk_size: u32,
        layer_chunks: &[LayerChunks],
        shards: &[LayerRange],
    ) -> anyhow::Result<Self> {
        let parts = GgufParts::open(path)
            .with_context(|| format!("reading the model's layout from {}", path.display()))?;
        let extents = parts.layer_extents(layer_chunks.len())?;
        let mut layers = BTreeMap::new();
        for layer in shards.iter().flat_map(|r| r.start..r.end) {
            if layers.contains_key(&layer) {
                continue;
            }
            let (Some(extents), Some(expected)) = (
                extents.get(usize::from(layer)),
                layer_chunks.get(usize::from(layer)),
            ) else {
                bail!("layer {layer} is not in the chain's model");
            };
            let bytes = LayerBytes {
                extents: extents.clone(),
            };
            let tree = bytes
                .tree(chunk_size)
                .with_context(|| format!("hashing layer {layer} of {}", path.display()))?;
            ensure!(
                LayerChunks::from(&tree) == *expected,
                "layer {layer} of {} does not match the chain's chunk root ({} != {})",
                path.display(),
                hex_hash(&tree.root()),
                hex_hash(&expected.root)
            );
            layers.insert(layer, (bytes, tree));
        }
        Ok(Self {
            path: path.to_path_buf(),
            chunk_size,
            layers,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of chunk `index` of `layer` and their Merkle path.
    pub fn answer(&self, layer: u16, index: u64) -> anyhow::Result<(Vec<u8>, Vec<Option<Hash>>)> {
        let (bytes, tree) = self
            .layers
            .get(&layer)
            .with_context(|| format!("layer {layer} is not one this node serves"))?;
        let range = tree.chunk_range(index);
        ensure!(
            range.start < bytes.len(),
            "layer {layer} has no chunk {index}"
        );
        let chunk = bytes.read(range.start, u64::from(self.chunk_size))?;
        Ok((chunk, tree.proof(index)))
    }
}

/// The chain's view of a model's layers: each layer's chunk root and count, as a chain
/// spec states them (`neuroshard model-chunks` prints this for a model file).
pub fn layer_chunks(
    path: &Path,
    num_layers: usize,
    chunk_size: u32,
) -> anyhow::Result<Vec<LayerChunks>> {
    let parts = GgufParts::open(path)
        .with_context(|| format!("reading the model's layout from {}", path.display()))?;
    parts
        .layer_extents(num_layers)?
        .into_iter()
        .enumerate()
        .map(|(l, extents)| {
            let tree = LayerBytes { extents }
                .tree(chunk_size)
                .with_context(|| format!("hashing layer {l} of {}", path.display()))?;
            Ok(LayerChunks::from(&tree))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_inference::tiny_gguf;
    use neuroshard_primitives::model_chunks::{challenge_index, verify_chunk};

    #[test]
    fn served_layers_answer_challenges_that_verify_against_the_chains_roots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let spec = tiny_gguf::tiny_family("llama").unwrap();
        tiny_gguf::write_gguf(&path, &spec).unwrap();
        let roots = layer_chunks(&path, 3, 64).unwrap();
        // The same model split into parts has the same layers.
        let split = tiny_gguf::write_split_gguf(dir.path(), "split", &spec, 3).unwrap();
        assert_eq!(layer_chunks(&split, 3, 64).unwrap(), roots);
        assert_eq!(roots.len(), 3);
        assert_ne!(roots[0].root, roots[1].root);
        let shard = [LayerRange::new(1, 3).unwrap()];
        let held = ModelPossession::open(&path, 64, &roots, &shard).unwrap();
        for layer in 1..3u16 {
            let n = roots[usize::from(layer)].num_chunks;
            for seed in 0..8u8 {
                let seed = neuroshard_primitives::blake2_256(&[seed]);
                let index = challenge_index(&seed, &[7; 32].into(), n);
                let (chunk, proof) = held.answer(layer, index).unwrap();
                let root = &roots[usize::from(layer)].root;
                assert!(verify_chunk(root, n, 64, index, &chunk, &proof));
            }
        }
        // Layer 0 is not served: not hashed, not answered.
        assert!(held.answer(0, 0).is_err());
        // Roots of another model are refused at startup, naming the layer.
        let mut wrong = roots.clone();
        wrong[2].root = Hash::zero();
        let err = ModelPossession::open(&path, 64, &wrong, &shard)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("layer 2"), "{err:#}");
    }
}
