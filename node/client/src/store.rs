//! Durable chain storage on redb: blocks by hash, the canonical number -> hash index,
//! the current state (key -> value), the state's version history (every kept block's
//! state, see [`crate::history`]), one undo record per block not yet below the kept
//! states (the values its changes overwrote: what a revert restores), and meta pointers
//! (genesis, head, finalized, oldest kept state). A block's events are its
//! `System.Events` state entry, read like any other historical value.
//!
//! Every block is committed in ONE write transaction — block, index, undo, state
//! changes, their versions and head pointer together — so a process killed at any instant
//! (kill -9, power loss) leaves either the old or the new chain tip on disk, never a
//! mixture. redb commits with fsync (`Durability::Immediate`, its default).
//!
//! The store knows nothing about the runtime: it keeps SCALE bytes of the primitives'
//! types and raw state pairs, and reports corrupt bytes as [`StoreError::Corrupt`].

use crate::history::{self, StateView, HISTORY};
use neuroshard_primitives::{Block, BlockNumber, Hash};
use neuroshard_support::StateChanges;
use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use thiserror::Error;

const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
const CANONICAL: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("canonical");
const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Finality justifications (SCALE bytes the store does not interpret) by block hash.
const JUSTIFICATIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("justifications");

const META_GENESIS: &str = "genesis";
const META_HEAD: &str = "head";
const META_FINALIZED: &str = "finalized";
/// The oldest block whose state is kept (absent: genesis, an archive).
const META_STATE_FROM: &str = "state_from";
/// Present in databases that keep state versions (older ones cannot answer historical
/// queries and are refused).
const META_VERSIONED: &str = "versioned_state";

/// The previous values of the keys a block changed (`None`: the key did not exist).
pub type Undo = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Raw state entries, in key order.
pub type StatePairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Errors of the block store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("database is corrupt: stored {0} does not decode")]
    Corrupt(&'static str),
    #[error("database is corrupt: {0}")]
    Inconsistent(String),
    #[error(
        "the database predates versioned state (no state history); delete it (or use \
         another --base-path) and let the node sync again"
    )]
    Unversioned,
    #[error("cannot create database directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

/// What the store holds about the chain tip after opening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointers {
    pub genesis: Hash,
    pub head: Hash,
    pub finalized: Hash,
}

/// Where a block's state stands in the store.
pub enum StateAt {
    /// Readable: a snapshot view of it (boxed: a view holds a redb table handle).
    Kept(Box<StateView>),
    /// A canonical block whose state was pruned (`--state-pruning`).
    Discarded(BlockNumber),
    /// Not a stored canonical block.
    Unknown,
}

/// The redb-backed block and state store.
pub struct Store {
    db: Database,
}

fn hash_key(hash: &Hash) -> &[u8; 32] {
    hash.as_fixed_bytes()
}

impl Store {
    /// Opens (or creates) the database file at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(db_err)?;
        let store = Self { db };
        // Create every table so read transactions never see a missing one.
        let txn = store.db.begin_write().map_err(db_err)?;
        {
            txn.open_table(BLOCKS).map_err(db_err)?;
            txn.open_table(CANONICAL).map_err(db_err)?;
            txn.open_table(UNDO).map_err(db_err)?;
            txn.open_table(HISTORY).map_err(db_err)?;
            txn.open_table(JUSTIFICATIONS).map_err(db_err)?;
            txn.open_table(STATE).map_err(db_err)?;
            txn.open_table(META).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        if store.pointers()?.is_some() && store.meta(META_VERSIONED)?.is_none() {
            return Err(StoreError::Unversioned);
        }
        Ok(store)
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let value = meta.get(name).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// The oldest block whose state is kept (0 in an archive).
    pub fn state_from(&self) -> Result<BlockNumber, StoreError> {
        match self.meta(META_STATE_FROM)? {
            None => Ok(0),
            Some(bytes) => Ok(u64::from_le_bytes(
                bytes
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("state_from"))?,
            )),
        }
    }

    /// The genesis, head and finalized pointers, or `None` for an empty database.
    pub fn pointers(&self) -> Result<Option<Pointers>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let read = |name: &'static str| -> Result<Option<Hash>, StoreError> {
            match meta.get(name).map_err(db_err)? {
                None => Ok(None),
                Some(v) => {
                    let bytes = v.value();
                    if bytes.len() != 32 {
                        return Err(StoreError::Corrupt("meta pointer"));
                    }
                    Ok(Some(Hash::from_slice(bytes)))
                }
            }
        };
        match (read(META_GENESIS)?, read(META_HEAD)?, read(META_FINALIZED)?) {
            (None, None, None) => Ok(None),
            (Some(genesis), Some(head), Some(finalized)) => Ok(Some(Pointers {
                genesis,
                head,
                finalized,
            })),
            _ => Err(StoreError::Inconsistent(
                "some of the genesis/head/finalized pointers are missing".into(),
            )),
        }
    }

    /// Writes the genesis block and state in one transaction.
    pub fn init_genesis(
        &self,
        genesis: &Block,
        state: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let changes: StateChanges = state.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let hash = genesis.hash();
        self.write_block(genesis, &changes, hash, Some(hash))
    }

    /// Commits an imported or authored block as the new head, atomically: the block,
    /// its canonical index entry, its undo record, the state changes and their versions,
    /// and the head (and, when given, finalized) pointer.
    pub fn commit_block(
        &self,
        block: &Block,
        changes: &StateChanges,
        finalized: Option<Hash>,
    ) -> Result<(), StoreError> {
        let genesis = self
            .pointers()?
            .ok_or_else(|| StoreError::Inconsistent("commit before genesis".into()))?
            .genesis;
        self.write_block(block, changes, genesis, finalized)
    }

    fn write_block(
        &self,
        block: &Block,
        changes: &StateChanges,
        genesis: Hash,
        finalized: Option<Hash>,
    ) -> Result<(), StoreError> {
        let hash = block.hash();
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut state = txn.open_table(STATE).map_err(db_err)?;
            let mut undo: Undo = Vec::with_capacity(changes.len());
            for (key, value) in changes {
                let old = match value {
                    Some(v) => state.insert(key.as_slice(), v.as_slice()),
                    None => state.remove(key.as_slice()),
                }
                .map_err(db_err)?
                .map(|guard| guard.value().to_vec());
                undo.push((key.clone(), old));
            }
            let mut versions = txn.open_table(HISTORY).map_err(db_err)?;
            history::record(&mut versions, block.header.number, changes)?;
            txn.open_table(BLOCKS)
                .map_err(db_err)?
                .insert(hash_key(&hash), block.encode().as_slice())
                .map_err(db_err)?;
            txn.open_table(CANONICAL)
                .map_err(db_err)?
                .insert(block.header.number, hash_key(&hash))
                .map_err(db_err)?;
            txn.open_table(UNDO)
                .map_err(db_err)?
                .insert(hash_key(&hash), undo.encode().as_slice())
                .map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(META_GENESIS, genesis.as_bytes())
                .map_err(db_err)?;
            meta.insert(META_VERSIONED, [1u8].as_slice())
                .map_err(db_err)?;
            meta.insert(META_HEAD, hash.as_bytes()).map_err(db_err)?;
            if let Some(finalized) = finalized {
                meta.insert(META_FINALIZED, finalized.as_bytes())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Reverts the canonical chain from the head back to its ancestor `target`, in one
    /// transaction: the undo records restore the state, the reverted blocks leave the
    /// canonical index and the store, and the head pointer moves to `target`. Returns the
    /// state changes that were applied, in order, for the caller's in-memory state.
    pub fn revert_to(&self, target: &Hash, head: &Block) -> Result<Vec<StateChanges>, StoreError> {
        let target_number = self
            .block(target)?
            .ok_or_else(|| StoreError::Inconsistent("revert target is not stored".into()))?
            .header
            .number;
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut applied = Vec::new();
        {
            let mut state = txn.open_table(STATE).map_err(db_err)?;
            let mut blocks = txn.open_table(BLOCKS).map_err(db_err)?;
            let mut canonical = txn.open_table(CANONICAL).map_err(db_err)?;
            let mut versions = txn.open_table(HISTORY).map_err(db_err)?;
            let mut undos = txn.open_table(UNDO).map_err(db_err)?;
            let mut hash = head.hash();
            let mut number = head.header.number;
            let mut parent = head.header.parent_hash;
            while number > target_number {
                let undo = undos
                    .remove(hash_key(&hash))
                    .map_err(db_err)?
                    .map(|v| Undo::decode(&mut v.value()).map_err(|_| StoreError::Corrupt("undo")))
                    .transpose()?
                    .ok_or(StoreError::Corrupt("missing undo record"))?;
                history::unrecord(
                    &mut versions,
                    number,
                    undo.iter().map(|(k, _)| k.as_slice()),
                )?;
                let mut changes = StateChanges::new();
                for (key, old) in undo.into_iter().rev() {
                    match &old {
                        Some(v) => state.insert(key.as_slice(), v.as_slice()),
                        None => state.remove(key.as_slice()),
                    }
                    .map_err(db_err)?;
                    changes.insert(key, old);
                }
                applied.push(changes);
                canonical.remove(number).map_err(db_err)?;
                blocks.remove(hash_key(&hash)).map_err(db_err)?;
                hash = parent;
                number -= 1;
                if number > target_number {
                    let block = blocks
                        .get(hash_key(&hash))
                        .map_err(db_err)?
                        .map(|v| {
                            Block::decode(&mut v.value()).map_err(|_| StoreError::Corrupt("block"))
                        })
                        .transpose()?
                        .ok_or(StoreError::Corrupt("missing ancestor block"))?;
                    parent = block.header.parent_hash;
                }
            }
            if hash != *target {
                return Err(StoreError::Inconsistent(
                    "revert target is not an ancestor of the head".into(),
                ));
            }
            txn.open_table(META)
                .map_err(db_err)?
                .insert(META_HEAD, target.as_bytes())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(applied)
    }

    /// Moves the finalized pointer to `hash` and stores its justification.
    pub fn finalize(&self, hash: &Hash, justification: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            txn.open_table(JUSTIFICATIONS)
                .map_err(db_err)?
                .insert(hash_key(hash), justification)
                .map_err(db_err)?;
            txn.open_table(META)
                .map_err(db_err)?
                .insert(META_FINALIZED, hash.as_bytes())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// The justification stored for the finalized block `hash`, if any.
    pub fn justification(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_by_hash(JUSTIFICATIONS, hash)
    }

    /// Every state pair, in key order.
    pub fn state_pairs(&self) -> Result<StatePairs, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(STATE).map_err(db_err)?;
        let mut pairs = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (k, v) = entry.map_err(db_err)?;
            pairs.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(pairs)
    }

    fn get_by_hash(
        &self,
        table: TableDefinition<&[u8; 32], &[u8]>,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(table).map_err(db_err)?;
        let value = table.get(hash_key(hash)).map_err(db_err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// The block with `hash`, if stored.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        self.get_by_hash(BLOCKS, hash)?
            .map(|b| Block::decode(&mut b.as_slice()).map_err(|_| StoreError::Corrupt("block")))
            .transpose()
    }

    /// The undo record of the block with `hash`, if stored.
    pub fn undo(&self, hash: &Hash) -> Result<Option<Undo>, StoreError> {
        self.get_by_hash(UNDO, hash)?
            .map(|b| Undo::decode(&mut b.as_slice()).map_err(|_| StoreError::Corrupt("undo")))
            .transpose()
    }

    /// The canonical block hash at `number`.
    pub fn canonical_hash(&self, number: BlockNumber) -> Result<Option<Hash>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CANONICAL).map_err(db_err)?;
        let value = table.get(number).map_err(db_err)?;
        Ok(value.map(|v| Hash::from(*v.value())))
    }

    /// The state after block `hash`: a snapshot view when it is a kept canonical block.
    pub fn state_at(&self, hash: &Hash) -> Result<StateAt, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let block = txn
            .open_table(BLOCKS)
            .map_err(db_err)?
            .get(hash_key(hash))
            .map_err(db_err)?
            .map(|v| Block::decode(&mut v.value()).map_err(|_| StoreError::Corrupt("block")))
            .transpose()?;
        let Some(number) = block.map(|b| b.header.number) else {
            return Ok(StateAt::Unknown);
        };
        let canonical = txn
            .open_table(CANONICAL)
            .map_err(db_err)?
            .get(number)
            .map_err(db_err)?
            .map(|v| Hash::from(*v.value()));
        if canonical != Some(*hash) {
            return Ok(StateAt::Unknown);
        }
        let from = match txn.open_table(META).map_err(db_err)?.get(META_STATE_FROM) {
            Ok(Some(v)) => u64::from_le_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("state_from"))?,
            ),
            Ok(None) => 0,
            Err(e) => return Err(db_err(e)),
        };
        if number < from {
            return Ok(StateAt::Discarded(number));
        }
        let table = txn.open_table(HISTORY).map_err(db_err)?;
        Ok(StateAt::Kept(Box::new(StateView::new(
            table, number, *hash,
        ))))
    }

    /// How many state versions the history holds (for tests and measurements).
    pub fn history_len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(HISTORY).map_err(db_err)?;
        table.len().map_err(db_err)
    }

    /// Discards the states of the canonical blocks before `keep_from` (one transaction):
    /// for each block from the oldest kept one up to `keep_from`, the versions its keys
    /// no longer need and its undo record (a revert never goes below the kept states:
    /// the caller keeps everything from the finalized block on). Returns how many
    /// blocks' states were discarded.
    pub fn prune_states(&self, keep_from: BlockNumber) -> Result<u64, StoreError> {
        let from = self.state_from()?;
        if keep_from <= from {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let canonical = txn.open_table(CANONICAL).map_err(db_err)?;
            let mut undos = txn.open_table(UNDO).map_err(db_err)?;
            let mut versions = txn.open_table(HISTORY).map_err(db_err)?;
            for number in from..=keep_from {
                let hash = canonical
                    .get(number)
                    .map_err(db_err)?
                    .map(|v| Hash::from(*v.value()))
                    .ok_or_else(|| {
                        StoreError::Inconsistent(format!("no canonical block #{number} to prune"))
                    })?;
                let undo = undos
                    .remove(hash_key(&hash))
                    .map_err(db_err)?
                    .map(|v| Undo::decode(&mut v.value()).map_err(|_| StoreError::Corrupt("undo")))
                    .transpose()?;
                // Block `from` was processed when it became the oldest kept state.
                if let (Some(undo), true) = (undo, number > from) {
                    let keys = undo.iter().map(|(k, _)| k.as_slice());
                    history::forget_before(&mut versions, number, keys)?;
                }
            }
            txn.open_table(META)
                .map_err(db_err)?
                .insert(META_STATE_FROM, keep_from.to_le_bytes().as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(keep_from - from)
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
            let changes: StateChanges =
                [(b"a".to_vec(), None), (b"b".to_vec(), Some(b"2".to_vec()))]
                    .into_iter()
                    .collect();
            store.commit_block(&b1, &changes, Some(b1.hash())).unwrap();
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
                store.commit_block(&b, &changes, None).unwrap();
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
}
