//! Versioned state: the state after any kept block can be read without copying the
//! state per block. The `history` table holds one entry per key per block that changed
//! it, `(key, block number) -> [1] ++ value` (or `[0]` when the block deleted the key),
//! written in the same transaction as the block. The value of `key` after block `n` is
//! the last entry of the range `(key, 0)..=(key, n)`: one B-tree seek, whatever the
//! chain's length. Listing keys under a prefix reads the prefix's versions in one
//! sequential pass.
//!
//! Only the canonical chain has versions: a revert deletes the reverted blocks' entries
//! (their undo records name the keys). Pruning (`--state-pruning N`) moves the oldest
//! kept state to block `b` by deleting, for each key block `b` changed, the versions
//! before `b` (and `b`'s own when it is a deletion): no state from `b` on reads them.
//! Keys `b` did not change keep their last older version, which is still their value.

use crate::store::{db_err, StatePairs, StoreError};
use neuroshard_primitives::{BlockNumber, Hash};
use neuroshard_support::{ReadState, StateChanges};
use parking_lot::Mutex;
use redb::{ReadOnlyTable, ReadableTable, Table, TableDefinition};

/// Per-key version history (see the module docs).
pub(crate) const HISTORY: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("history");

const DELETED: u8 = 0;
const SET: u8 = 1;

type HistoryTable<'txn> = Table<'txn, (&'static [u8], u64), &'static [u8]>;

fn encode_version(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![DELETED],
        Some(v) => {
            let mut bytes = Vec::with_capacity(v.len() + 1);
            bytes.push(SET);
            bytes.extend_from_slice(v);
            bytes
        }
    }
}

fn decode_version(bytes: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match bytes.split_first() {
        Some((&SET, value)) => Ok(Some(value.to_vec())),
        Some((&DELETED, [])) => Ok(None),
        _ => Err(StoreError::Corrupt("state version")),
    }
}

/// Records the values block `number` gave the keys it changed.
pub(crate) fn record(
    table: &mut HistoryTable<'_>,
    number: BlockNumber,
    changes: &StateChanges,
) -> Result<(), StoreError> {
    for (key, value) in changes {
        table
            .insert(
                (key.as_slice(), number),
                encode_version(value.as_deref()).as_slice(),
            )
            .map_err(db_err)?;
    }
    Ok(())
}

/// Deletes the versions block `number` wrote for `keys` (the block is reverted).
pub(crate) fn unrecord<'k>(
    table: &mut HistoryTable<'_>,
    number: BlockNumber,
    keys: impl IntoIterator<Item = &'k [u8]>,
) -> Result<(), StoreError> {
    for key in keys {
        table.remove((key, number)).map_err(db_err)?;
    }
    Ok(())
}

/// Deletes what no state from block `number` on reads: for each of `keys` (the keys
/// block `number` changed) its versions before `number`, and `number`'s own when it is
/// a deletion.
pub(crate) fn forget_before<'k>(
    table: &mut HistoryTable<'_>,
    number: BlockNumber,
    keys: impl IntoIterator<Item = &'k [u8]>,
) -> Result<(), StoreError> {
    for key in keys {
        table
            .retain_in((key, 0)..(key, number), |_, _| false)
            .map_err(db_err)?;
        let deleted = match table.get((key, number)).map_err(db_err)? {
            Some(v) => decode_version(v.value())?.is_none(),
            None => false,
        };
        if deleted {
            table.remove((key, number)).map_err(db_err)?;
        }
    }
    Ok(())
}

/// The value of `key` after block `number`.
fn version_at(
    table: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    number: BlockNumber,
) -> Result<Option<Vec<u8>>, StoreError> {
    match table
        .range((key, 0)..=(key, number))
        .map_err(db_err)?
        .next_back()
    {
        None => Ok(None),
        Some(entry) => decode_version(entry.map_err(db_err)?.1.value()),
    }
}

/// Every entry under `prefix` after block `number`, in key order: one sequential pass
/// over the prefix's versions (cheaper than a seek per key: `bench state-history`).
fn scan_at(
    table: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    prefix: &[u8],
    number: BlockNumber,
) -> Result<StatePairs, StoreError> {
    let mut pairs = Vec::new();
    // The key being read and its last version at or before `number` so far.
    let mut current: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    for entry in table.range((prefix, 0)..).map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let (key, at) = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        if current.as_ref().is_none_or(|(k, _)| k.as_slice() != key) {
            if let Some((k, Some(v))) = current.take() {
                pairs.push((k, v));
            }
            current = Some((key.to_vec(), None));
        }
        if at <= number {
            if let Some((_, latest)) = current.as_mut() {
                *latest = decode_version(value.value())?;
            }
        }
    }
    if let Some((k, Some(v))) = current {
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// The state after one kept canonical block, read from the history table in one redb
/// read transaction (a snapshot: blocks committed or pruned meanwhile do not show).
/// [`ReadState`] cannot fail, so a database error is kept and reported by
/// [`StateView::check`]; the caller must call it before trusting what it read.
pub struct StateView {
    table: ReadOnlyTable<(&'static [u8], u64), &'static [u8]>,
    number: BlockNumber,
    hash: Hash,
    error: Mutex<Option<StoreError>>,
}

impl StateView {
    pub(crate) fn new(
        table: ReadOnlyTable<(&'static [u8], u64), &'static [u8]>,
        number: BlockNumber,
        hash: Hash,
    ) -> Self {
        Self {
            table,
            number,
            hash,
            error: Mutex::new(None),
        }
    }

    /// The block whose state this is.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn number(&self) -> BlockNumber {
        self.number
    }

    /// The first database error a read met, if any.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every entry of the state, in key order (to build a Merkle tree for proofs).
    pub fn pairs(&self) -> Result<StatePairs, StoreError> {
        scan_at(&self.table, &[], self.number)
    }

    fn keep<T: Default>(&self, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| {
            self.error.lock().get_or_insert(e);
            T::default()
        })
    }
}

impl ReadState for StateView {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.keep(version_at(&self.table, key, self.number))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.keep(scan_at(&self.table, prefix, self.number))
    }
}

#[cfg(test)]
mod tests;
