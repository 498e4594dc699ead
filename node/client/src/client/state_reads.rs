//! The client's reads of past blocks: the state after any kept block (a snapshot view
//! over the store's version history, or the whole state for proofs and fork checks),
//! a block's events (its `System.Events`), and pruning the states `--state-pruning` no
//! longer keeps.

use super::{load_header, Client, ClientError};
use crate::history::StateView;
use crate::store::StateAt;
use neuroshard_primitives::{Event, Hash};
use neuroshard_runtime::{DispatchError, StateDb};
use tracing::debug;

impl Client {
    /// The events of block `hash`: its `System.Events`. `None` for an unknown or
    /// non-canonical block; an error when its state was pruned.
    pub fn events(&self, hash: &Hash) -> Result<Option<Vec<Event>>, ClientError> {
        let Some(view) = self.state_view(hash)? else {
            return Ok(None);
        };
        let records = neuroshard_runtime::system::EVENTS
            .get(&view)
            .map_err(DispatchError::from)?;
        view.check()?;
        Ok(Some(
            records
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.event.0)
                .collect(),
        ))
    }

    /// A snapshot view of the state after the kept canonical block `hash` (reads go to
    /// the store's version history: see [`crate::history`]). `None` when the block is
    /// unknown or not canonical; [`ClientError::StateDiscarded`] when it was pruned.
    pub fn state_view(&self, hash: &Hash) -> Result<Option<StateView>, ClientError> {
        match self.store.state_at(hash)? {
            StateAt::Kept(view) => Ok(Some(*view)),
            StateAt::Discarded(_) => Err(ClientError::StateDiscarded(*hash)),
            StateAt::Unknown => Ok(None),
        }
    }

    /// The whole state after the canonical block `hash` (for Merkle proofs and for
    /// executing a fork on it), checked against the block's state root. The head's is a
    /// copy of the in-memory state; an older one is read from the version history.
    pub fn state_at(&self, hash: &Hash) -> Result<Option<StateDb>, ClientError> {
        {
            let tip = self.tip.read();
            if *hash == tip.head.hash() {
                return Ok(Some(tip.state.clone()));
            }
        }
        let Some(view) = self.state_view(hash)? else {
            return Ok(None);
        };
        let state = StateDb::from_pairs(view.pairs()?);
        let header = load_header(&self.store, hash)?;
        if state.root() != header.state_root {
            return Err(ClientError::HistoricalStateMismatch(*hash));
        }
        Ok(Some(state))
    }

    /// Discards the states `--state-pruning` no longer keeps: those before both the
    /// last N blocks and the finalized block (a reorg above finality reverts to a state
    /// at or after it, so that is never pruned).
    pub(super) fn prune_states(&self) -> Result<(), ClientError> {
        let Some(keep) = self.config.state_pruning else {
            return Ok(());
        };
        let keep_from = {
            let tip = self.tip.read();
            let recent = tip.head.number.saturating_sub(keep.max(1) - 1);
            recent.min(tip.finalized.number)
        };
        let pruned = self.store.prune_states(keep_from)?;
        if pruned > 0 {
            debug!(pruned, keep_from, "discarded old states");
        }
        Ok(())
    }
}
