//! Prefix caching: a shard keeps what its layers computed for the first positions of
//! recent sessions — each position's keys and values in every layer, its output row, and
//! on the last shard its greedy next token — in blocks of [`BLOCK`] positions, so a new
//! session whose input starts with the same rows (a shared system prompt, the history of
//! a chat) copies those blocks into its KV cache instead of running them again.
//!
//! Blocks are found by content: block `j`'s key is the hash of block `j - 1`'s key and
//! the input rows of block `j`'s positions, starting from a root that names the scope and
//! the weights (adapter version) the block was computed on. A key thus stands for every
//! input row from position 0 to the block's end, and a block is only reused for exactly
//! the inputs it was computed from: the executor computes each row the same way whatever
//! else is in the batch and whatever was computed before it in another step (chunked
//! prefill relies on the same property), so the reused keys, values and outputs are the
//! bits a fresh computation gives, and so are the session's activation commitments (see
//! `docs/SERVING.md`).
//!
//! Scope: blocks are reused only within one scope, the paying client (an API key's
//! account, or the node's own account). A cache shared across clients would return the
//! same bits, but a hit is faster than a miss, and the time to the first token would
//! tell one client whether another sent a given prompt. Requests with no scope (peers'
//! forward calls through the shard server) are neither served from nor stored in it.
//!
//! The cache is bounded by a byte budget, least recently used blocks evicted first. A
//! lookup touches a prefix's blocks deepest first, so a prefix's first blocks are always
//! more recent than its later ones and eviction takes a prefix from its end; a block
//! whose parent was evicted is never reached (the walk stops at the first miss) and ages
//! out like any other.

use crate::batcher::{input_rows, Job};
use crate::error::Result;
use crate::executor::KvCache;
use crate::messages::{ShardOutput, ShardResponse};
use crate::shard::{Session, Shard};
use neuroshard_primitives::{blake2_256, Hash};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Who may reuse a cached prefix: the account of the paying client.
pub type PrefixScope = [u8; 32];

/// Positions per cached block.
pub const BLOCK: usize = 16;

/// Bytes a block costs beyond its values (map entry, key, allocation headers).
const BLOCK_OVERHEAD: usize = 256;

const DOMAIN: &[u8] = b"neuroshard/prefix-cache/v1";

/// What one shard computed for [`BLOCK`] consecutive positions.
#[derive(Debug)]
pub struct PrefixBlock {
    /// Per layer: the positions' keys and values (`BLOCK × kv_dim` each).
    pub kv: Vec<(Vec<f32>, Vec<f32>)>,
    /// The positions' output rows (`BLOCK × hidden`).
    pub out: Vec<f32>,
    /// On the last shard, the greedy next token after each position.
    pub argmax: Option<Vec<u32>>,
}

impl PrefixBlock {
    /// The memory the block holds, as the budget counts it.
    pub fn bytes(&self) -> usize {
        let values: usize = self.kv.iter().map(|(k, v)| k.len() + v.len()).sum();
        (values + self.out.len() + self.argmax.as_ref().map_or(0, Vec::len)) * 4 + BLOCK_OVERHEAD
    }
}

/// The root key of `scope`'s prefixes on the weights of adapter version `adapter`.
pub fn root(scope: &PrefixScope, adapter: Option<Hash>) -> Hash {
    let mut bytes = DOMAIN.to_vec();
    bytes.extend_from_slice(scope);
    match adapter {
        Some(a) => {
            bytes.push(1);
            bytes.extend_from_slice(a.as_bytes());
        }
        None => bytes.push(0),
    }
    blake2_256(&bytes)
}

/// The keys of the first `blocks` blocks of `rows` (`width` values per position).
pub fn block_keys(root: Hash, rows: &[f32], width: usize, blocks: usize) -> Vec<Hash> {
    let per_block = BLOCK * width;
    let mut keys = Vec::with_capacity(blocks);
    let mut parent = root;
    for chunk in rows.chunks_exact(per_block.max(1)).take(blocks) {
        let mut bytes = Vec::with_capacity(32 + chunk.len() * 4);
        bytes.extend_from_slice(parent.as_bytes());
        for v in chunk {
            bytes.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        parent = blake2_256(&bytes);
        keys.push(parent);
    }
    keys
}

/// Counters of a prefix cache for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixFigures {
    /// Bytes held.
    pub bytes: u64,
    /// The byte budget.
    pub budget: u64,
    /// Blocks held.
    pub blocks: u64,
    /// Positions of scoped requests from position 0 (of at least one block) that were
    /// reused.
    pub hit_positions: u64,
    /// Positions of such requests that were computed.
    pub miss_positions: u64,
    /// Blocks evicted to stay within the budget.
    pub evictions: u64,
}

struct Entry {
    block: Arc<PrefixBlock>,
    used: u64,
}

/// A shard's cache of prefix blocks (see the module docs).
pub struct PrefixCache {
    budget: usize,
    bytes: usize,
    clock: u64,
    entries: HashMap<Hash, Entry>,
    /// Keys by last use, oldest first.
    lru: BTreeMap<u64, Hash>,
    hit_positions: u64,
    miss_positions: u64,
    evictions: u64,
}

impl std::fmt::Debug for PrefixCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixCache")
            .field("budget", &self.budget)
            .field("bytes", &self.bytes)
            .field("blocks", &self.entries.len())
            .finish()
    }
}

impl PrefixCache {
    /// A cache holding at most `budget` bytes (0: caching off).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: 0,
            clock: 0,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            hit_positions: 0,
            miss_positions: 0,
            evictions: 0,
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    pub fn figures(&self) -> PrefixFigures {
        PrefixFigures {
            bytes: self.bytes as u64,
            budget: self.budget as u64,
            blocks: self.entries.len() as u64,
            hit_positions: self.hit_positions,
            miss_positions: self.miss_positions,
            evictions: self.evictions,
        }
    }

    pub fn contains(&self, key: &Hash) -> bool {
        self.entries.contains_key(key)
    }

    fn touch(&mut self, key: &Hash) {
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self.entries.get_mut(key) {
            self.lru.remove(&e.used);
            e.used = now;
            self.lru.insert(now, *key);
        }
    }

    /// The cached blocks of the longest run of `keys` from the first, touched deepest
    /// first.
    pub fn lookup(&mut self, keys: &[Hash]) -> Vec<Arc<PrefixBlock>> {
        let found: Vec<Arc<PrefixBlock>> = keys
            .iter()
            .map_while(|k| self.entries.get(k).map(|e| e.block.clone()))
            .collect();
        for key in keys[..found.len()].iter().rev() {
            self.touch(key);
        }
        found
    }

    /// Counts a request's reused and computed positions.
    pub fn count(&mut self, hit: usize, miss: usize) {
        self.hit_positions += hit as u64;
        self.miss_positions += miss as u64;
    }

    /// Stores the blocks of a prefix whose keys are `keys` (`make(j)` builds block `j`
    /// when it is not cached yet), deepest first, evicting the least recently used
    /// blocks to stay within the budget. A block larger than the budget is not stored.
    pub fn insert_chain(&mut self, keys: &[Hash], mut make: impl FnMut(usize) -> PrefixBlock) {
        for (j, key) in keys.iter().enumerate().rev() {
            if self.entries.contains_key(key) {
                self.touch(key);
                continue;
            }
            let block = make(j);
            let size = block.bytes();
            if size > self.budget {
                continue;
            }
            while self.bytes + size > self.budget {
                if !self.evict_oldest() {
                    break;
                }
            }
            self.clock += 1;
            self.bytes += size;
            self.lru.insert(self.clock, *key);
            self.entries.insert(
                *key,
                Entry {
                    block: Arc::new(block),
                    used: self.clock,
                },
            );
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.lru.pop_first() else {
            return false;
        };
        if let Some(e) = self.entries.remove(&key) {
            self.bytes -= e.block.bytes();
            self.evictions += 1;
        }
        true
    }

    /// Drops every block (the weights changed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
        self.bytes = 0;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs cached blocks as the first positions of a session's KV cache.
pub(crate) fn install(cache: &mut KvCache, hit: &[Arc<PrefixBlock>]) -> Result<()> {
    if hit.is_empty() {
        return Ok(());
    }
    cache.truncate(0)?;
    for block in hit {
        cache.append(&block.kv, BLOCK)?;
    }
    Ok(())
}

impl Shard {
    /// `job` reusing what the prefix cache holds of its first positions, when it is a
    /// request of `scope` from position 0 on the current weights (the positions reused
    /// are whole blocks and leave at least one position to compute).
    pub(crate) fn prefixed_job(&self, job: Job, scope: &PrefixScope) -> Job {
        let positions = job.req.input.positions() as usize;
        if job.req.start_pos != 0 || positions < BLOCK || lock(&self.prefix).budget() == 0 {
            return job;
        }
        let exec = &job.weights.exec;
        let width = exec.config().hidden_size;
        // A malformed input is refused when the job runs.
        let Ok(rows) = input_rows(exec, &job.req.input) else {
            return job;
        };
        if rows.len() != positions * width {
            return job;
        }
        let keys = block_keys(
            root(scope, job.weights.adapter),
            &rows,
            width,
            positions / BLOCK,
        );
        let mut cache = lock(&self.prefix);
        let hit = if Arc::ptr_eq(&job.weights, &self.weights()) {
            cache.lookup(&keys[..(positions - 1) / BLOCK])
        } else {
            Vec::new()
        };
        cache.count(hit.len() * BLOCK, positions - hit.len() * BLOCK);
        drop(cache);
        job.with_prefix(rows, keys, hit)
    }

    /// Stores the blocks `job` computed (its output rows `out`, its session's keys and
    /// values, the greedy tokens of `response`), if its weights are still the current
    /// ones.
    pub(crate) fn store_prefix(
        &self,
        job: &Job,
        session: &Session,
        out: &[f32],
        response: &ShardResponse,
    ) {
        let cfg = job.weights.exec.config();
        let (width, kv_dim) = (cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim);
        let argmax = match &response.output {
            ShardOutput::Argmax(ids) => Some(ids),
            _ => None,
        };
        let full = job.prefix_keys.len().min(session.cache.len() / BLOCK);
        let mut cache = lock(&self.prefix);
        if !Arc::ptr_eq(&job.weights, &self.weights()) || out.len() < full * BLOCK * width {
            return;
        }
        cache.insert_chain(&job.prefix_keys[..full], |j| {
            let (a, b) = (j * BLOCK, (j + 1) * BLOCK);
            PrefixBlock {
                kv: session.cache.rows(a, b, kv_dim),
                out: out[a * width..b * width].to_vec(),
                argmax: argmax.and_then(|ids| ids.get(a..b)).map(<[u32]>::to_vec),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fill: f32) -> PrefixBlock {
        PrefixBlock {
            kv: vec![(vec![fill; BLOCK * 2], vec![fill; BLOCK * 2])],
            out: vec![fill; BLOCK * 4],
            argmax: None,
        }
    }

    fn rows(seed: u32, positions: usize) -> Vec<f32> {
        (0..positions * 4)
            .map(|i| (i as u32 ^ seed) as f32)
            .collect()
    }

    #[test]
    fn keys_chain_every_row_before_a_block() {
        let root = root(&[1; 32], None);
        let a = block_keys(root, &rows(0, 3 * BLOCK), 4, 3);
        let mut changed = rows(0, 3 * BLOCK);
        changed[5] += 1.0;
        let b = block_keys(root, &changed, 4, 3);
        assert_eq!(a.len(), 3);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "a change in block 0");
        // Another scope or adapter: other keys for the same rows.
        let other = block_keys(super::root(&[2; 32], None), &rows(0, BLOCK), 4, 1);
        assert_ne!(other[0], a[0]);
        let adapted = super::root(&[1; 32], Some(Hash::repeat_byte(3)));
        assert_ne!(block_keys(adapted, &rows(0, BLOCK), 4, 1)[0], a[0]);
        // A partial block has no key.
        assert_eq!(block_keys(root, &rows(0, BLOCK + 3), 4, 9).len(), 1);
    }

    #[test]
    fn the_budget_holds_and_eviction_takes_prefixes_from_their_end() {
        let size = block(0.0).bytes();
        let mut cache = PrefixCache::new(5 * size);
        let root = root(&[1; 32], None);
        let keys_a = block_keys(root, &rows(1, 4 * BLOCK), 4, 4);
        let keys_b = block_keys(root, &rows(2, 4 * BLOCK), 4, 4);
        cache.insert_chain(&keys_a, |j| block(j as f32));
        assert_eq!(cache.figures().blocks, 4);
        // Four more: three of a's blocks go, its deepest first; its first stays.
        cache.insert_chain(&keys_b, |j| block(10.0 + j as f32));
        let f = cache.figures();
        assert!(f.bytes <= f.budget, "{f:?}");
        assert_eq!((f.blocks, f.evictions), (5, 3));
        assert_eq!(cache.lookup(&keys_a).len(), 1);
        let b = cache.lookup(&keys_b);
        assert_eq!(b.len(), 4);
        assert!(b
            .iter()
            .enumerate()
            .all(|(j, blk)| blk.out[0] == 10.0 + j as f32));
        // Many more prefixes: never above the budget.
        for seed in 3..40 {
            let keys = block_keys(root, &rows(seed, 3 * BLOCK), 4, 3);
            cache.insert_chain(&keys, |_| block(seed as f32));
            let f = cache.figures();
            assert!(f.bytes <= f.budget, "{f:?}");
            assert_eq!(f.bytes as usize, f.blocks as usize * size);
        }
        // A budget smaller than one block stores nothing.
        let mut tiny = PrefixCache::new(size - 1);
        tiny.insert_chain(&keys_a, |j| block(j as f32));
        assert_eq!(tiny.figures().blocks, 0);
    }

    #[test]
    fn a_lookup_stops_at_the_first_missing_block() {
        let size = block(0.0).bytes();
        let mut cache = PrefixCache::new(10 * size);
        let root = root(&[1; 32], None);
        let keys = block_keys(root, &rows(1, 3 * BLOCK), 4, 3);
        // Only blocks 0 and 2 are stored: block 2 is unreachable.
        cache.insert_chain(&keys[..1], |_| block(0.0));
        cache.insert_chain(&keys[2..], |_| block(2.0));
        assert_eq!(cache.lookup(&keys).len(), 1);
        cache.clear();
        assert_eq!(cache.lookup(&keys).len(), 0);
        assert_eq!(cache.figures().bytes, 0);
    }
}
