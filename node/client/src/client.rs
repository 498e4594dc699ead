//! The chain client: the one place where the runtime, the store, the in-memory head
//! state and the transaction pool meet. RPC handlers read through it, the authoring task
//! and (later) the network import blocks through it.
//!
//! Writes are serialised by `write_lock`: building or executing a block reads the head
//! state, and committing it (store first, then memory) happens under the same lock, so
//! the head cannot move underneath a block being built. Readers take the `tip` read lock
//! only for as long as they look at the state.
//!
//! Startup is where durability is checked: the stored state is loaded and its Merkle
//! root must equal the head header's `state_root`, or the node refuses to start.

use crate::pool::{PoolError, TxPool};
use crate::store::{Store, StoreError};
use neuroshard_primitives::{
    slot_lottery, AccountId, Block, BlockNumber, Hash, Header, Keypair, Nonce, SignedExtrinsic,
};
use neuroshard_runtime::{
    AccountInfo, BlockError, DispatchError, GenesisConfig, GenesisError, ReadState, Runtime,
    RuntimeParams, StateChanges, StateDb, TransactionError, Validation,
};
use parking_lot::{Mutex, RwLock};
use sp_core::Pair as _;
use thiserror::Error;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

/// Most extrinsics offered to the block builder per block.
const MAX_CANDIDATES: usize = 8192;

/// Errors opening the chain or importing/authoring blocks.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the genesis state from the chain spec: {0}")]
    Genesis(#[from] GenesisError),
    #[error(
        "the database belongs to another chain (stored genesis {stored:?}, chain spec genesis \
         {spec:?}); use another --base-path or delete the old database"
    )]
    WrongChain { stored: Hash, spec: Hash },
    #[error(
        "stored state does not match the head block #{number}: header state root {header:?}, \
         state on disk hashes to {computed:?}; the database is corrupt"
    )]
    StateRootMismatch {
        number: BlockNumber,
        header: Hash,
        computed: Hash,
    },
    #[error("block {0:?} is referenced but missing from the database")]
    MissingBlock(Hash),
    #[error("the canonical index has no block #{0} below the head; the database is corrupt")]
    MissingCanonical(BlockNumber),
    #[error("runtime: {0}")]
    Runtime(#[from] DispatchError),
    #[error("block rejected: {0}")]
    Block(#[from] BlockError),
    #[error("cannot revert to block #{target}: block #{finalized} is final")]
    RevertFinalized {
        target: BlockNumber,
        finalized: BlockNumber,
    },
    /// Substrate's wording, so tools recognise it.
    #[error("State already discarded for {}", hex_hash(.0))]
    StateDiscarded(Hash),
    #[error(
        "state of block {} is not the state its header commits to; the database is corrupt",
        hex_hash(.0)
    )]
    HistoricalStateMismatch(Hash),
}

/// Why a submitted extrinsic was refused.
#[derive(Debug, Error)]
pub enum SubmitError {
    #[error("invalid transaction: {0}")]
    Invalid(#[from] TransactionError),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Which chain a client runs (from the chain spec).
#[derive(Clone, Debug)]
pub struct ChainInfo {
    /// Human-readable name (`system_chain`).
    pub name: String,
    /// Short id (database directory name).
    pub id: String,
    pub genesis: GenesisConfig,
}

/// Client behaviour chosen by the node's mode.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Finalize every block as soon as it is the head (single-authority dev chains).
    pub instant_finality: bool,
    /// Most extrinsics the pool holds.
    pub pool_capacity: usize,
    /// Blocks an extrinsic may wait in the pool before it is dropped.
    pub pool_longevity: BlockNumber,
    /// Keep the states of only the last N blocks (`--state-pruning N`, N >= 1), and always
    /// those from the finalized block on; `None`: every block's state (archive).
    pub state_pruning: Option<BlockNumber>,
    /// Fault injection for tests: leave every receipt batch (and what its sender sent
    /// after it) out of the blocks this node authors, as an author hoping to keep
    /// receipts from being drawn for a check would.
    #[cfg(feature = "fault-injection")]
    pub fault_omit_receipts: Option<faults::OmitReceipts>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            instant_finality: true,
            pool_capacity: 8192,
            pool_longevity: 600,
            state_pruning: None,
            #[cfg(feature = "fault-injection")]
            fault_omit_receipts: None,
        }
    }
}

struct Tip {
    state: StateDb,
    head: Header,
    finalized: Header,
}

/// The chain client (see the module docs).
pub struct Client {
    runtime: Runtime,
    genesis_hash: Hash,
    chain_name: String,
    chain_id: String,
    config: ClientConfig,
    store: Store,
    tip: RwLock<Tip>,
    write_lock: Mutex<()>,
    pool: Mutex<TxPool>,
    new_heads: broadcast::Sender<Header>,
    finalized_heads: broadcast::Sender<Header>,
    local_extrinsics: broadcast::Sender<SignedExtrinsic>,
    /// Held while the node's own services pick a nonce and submit.
    own_submissions: Mutex<()>,
}

impl Client {
    /// Opens the chain in `store`: writes genesis on first start, otherwise checks the
    /// database belongs to `chain` and that the stored state matches the head.
    pub fn open(
        store: Store,
        chain: &ChainInfo,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        let (genesis_state, genesis_header) = Runtime::build_genesis(&chain.genesis)?;
        let genesis_hash = genesis_header.hash();
        let pointers = match store.pointers()? {
            Some(p) => p,
            None => {
                let block = Block {
                    header: genesis_header,
                    extrinsics: vec![],
                };
                let pairs = genesis_state.iter().map(|(k, v)| (k.to_vec(), v.to_vec()));
                store.init_genesis(&block, pairs)?;
                info!(hash = %hex_hash(&genesis_hash), "wrote genesis block");
                store
                    .pointers()?
                    .ok_or(ClientError::MissingBlock(genesis_hash))?
            }
        };
        if pointers.genesis != genesis_hash {
            return Err(ClientError::WrongChain {
                stored: pointers.genesis,
                spec: genesis_hash,
            });
        }
        let head = load_header(&store, &pointers.head)?;
        let finalized = load_header(&store, &pointers.finalized)?;
        let state = StateDb::from_pairs(store.state_pairs()?);
        let computed = state.root();
        if computed != head.state_root {
            return Err(ClientError::StateRootMismatch {
                number: head.number,
                header: head.state_root,
                computed,
            });
        }
        info!(
            number = head.number,
            hash = %hex_hash(&head.hash()),
            state_root = %hex_hash(&computed),
            "chain head loaded, state root verified"
        );
        let client = Self {
            runtime: Runtime::new(genesis_hash),
            genesis_hash,
            chain_name: chain.name.clone(),
            chain_id: chain.id.clone(),
            pool: Mutex::new(TxPool::new(config.pool_capacity, config.pool_longevity)),
            config,
            store,
            tip: RwLock::new(Tip {
                state,
                head,
                finalized,
            }),
            write_lock: Mutex::new(()),
            own_submissions: Mutex::new(()),
            new_heads: broadcast::channel(64).0,
            finalized_heads: broadcast::channel(64).0,
            local_extrinsics: broadcast::channel(1024).0,
        };
        // `--state-pruning` may be new or smaller than at the last start.
        client.prune_states()?;
        Ok(client)
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub fn chain_name(&self) -> &str {
        &self.chain_name
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn best_header(&self) -> Header {
        self.tip.read().head.clone()
    }

    pub fn finalized_header(&self) -> Header {
        self.tip.read().finalized.clone()
    }

    /// Runs `f` on the head state (under the read lock; keep it short).
    pub fn with_best_state<T>(&self, f: impl FnOnce(&StateDb, &Header) -> T) -> T {
        let tip = self.tip.read();
        f(&tip.state, &tip.head)
    }

    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, ClientError> {
        Ok(self.store.block(hash)?)
    }

    pub fn header(&self, hash: &Hash) -> Result<Option<Header>, ClientError> {
        Ok(self.store.block(hash)?.map(|b| b.header))
    }

    pub fn block_hash(&self, number: BlockNumber) -> Result<Option<Hash>, ClientError> {
        Ok(self.store.canonical_hash(number)?)
    }

    /// The account record of `who` at the head.
    pub fn account(&self, who: &AccountId) -> Result<AccountInfo, ClientError> {
        let tip = self.tip.read();
        Ok(self.runtime.account(&tip.state, who)?)
    }

    /// The nonce `who` should sign its next extrinsic with, counting pooled ones.
    pub fn next_nonce(&self, who: &AccountId) -> Result<Nonce, ClientError> {
        let on_chain = self.account(who)?.nonce;
        Ok(self.pool.lock().next_nonce(who, on_chain))
    }

    /// The runtime parameters at the head.
    pub fn params(&self) -> Result<RuntimeParams, ClientError> {
        let tip = self.tip.read();
        Ok(Runtime::params(&tip.state)?)
    }

    /// The slot the wall clock is in now.
    pub fn current_slot(&self) -> Result<u64, ClientError> {
        let duration = self.params()?.system.slot_duration_ms.max(1);
        Ok(unix_millis() / duration)
    }

    /// The minute the next block falls in (the one a heartbeat or liveness report signed
    /// now must name).
    pub fn next_block_minute(&self) -> Result<u64, ClientError> {
        let params = self.params()?;
        Ok(neuroshard_runtime::system::minute_of_slot(
            &params.system,
            self.current_slot()? + 1,
        ))
    }

    /// Waits half a slot (the polling period of the node's own services), or until
    /// `shutdown` turns true; returns false on shutdown.
    pub async fn wait_half_slot(&self, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        let interval = self
            .params()
            .map(|p| p.system.slot_duration_ms / 2)
            .unwrap_or(1_000)
            .max(100);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(interval)) => true,
            _ = shutdown.changed() => false,
        }
    }

    /// Authors a block for `slot` with `key` when `key` is the slot's expected author
    /// and the slot is after the head's. Returns the new head, or `None` when it was not
    /// our turn.
    pub fn author_block(&self, slot: u64, key: &Keypair) -> Result<Option<Header>, ClientError> {
        let _write = self.write_lock.lock();
        let author: AccountId = key.public().into();
        let built = {
            let tip = self.tip.read();
            if slot <= tip.head.slot() {
                return Ok(None);
            }
            if Runtime::expected_author(&tip.state, slot)?.as_ref() != Some(&author) {
                return Ok(None);
            }
            let vrf = slot_lottery::sign(key, &Runtime::randomness(&tip.state)?, slot);
            let candidates = {
                let pool = self.pool.lock();
                pool.ready(
                    |who| {
                        self.runtime
                            .account(&tip.state, who)
                            .map(|a| a.nonce)
                            .unwrap_or(0)
                    },
                    MAX_CANDIDATES,
                )
            };
            #[cfg(feature = "fault-injection")]
            let candidates = match self.config.fault_omit_receipts {
                Some(omit) => omit.apply(&tip.state, (&author, slot, &vrf), candidates)?,
                None => candidates,
            };
            self.runtime
                .build_block(&tip.state, &tip.head, slot, author, vrf, candidates)?
        };
        for (hash, error) in &built.rejected {
            warn!(hash = %hex_hash(hash), %error, "extrinsic left out of the block and dropped");
        }
        let rejected: Vec<Hash> = built.rejected.iter().map(|(h, _)| *h).collect();
        let mut block = built.block;
        block.header.seal_with(key);
        self.commit(&block, &built.changes, &rejected)?;
        info!(
            number = block.header.number,
            hash = %hex_hash(&block.hash()),
            slot,
            extrinsics = block.extrinsics.len(),
            events = built.events.len(),
            "authored block"
        );
        Ok(Some(block.header))
    }

    /// Verifies `block` on the head and makes it the new head.
    pub fn import_block(&self, block: &Block) -> Result<(), ClientError> {
        let _write = self.write_lock.lock();
        let executed = {
            let tip = self.tip.read();
            self.runtime.execute_block(&tip.state, &tip.head, block)?
        };
        self.commit(block, &executed.changes, &[])?;
        info!(
            number = block.header.number,
            hash = %hex_hash(&block.hash()),
            extrinsics = block.extrinsics.len(),
            "imported block"
        );
        Ok(())
    }

    /// Reverts the best chain to its ancestor `target` (fork choice switching to a longer
    /// branch). Refuses to revert the finalized block or anything below it.
    pub fn revert_to(&self, target: &Hash) -> Result<(), ClientError> {
        let _write = self.write_lock.lock();
        let (head, finalized) = {
            let tip = self.tip.read();
            (tip.head.clone(), tip.finalized.clone())
        };
        let target_header = self
            .store
            .block(target)?
            .ok_or(ClientError::MissingBlock(*target))?
            .header;
        if target_header.number < finalized.number
            || self.store.canonical_hash(target_header.number)? != Some(*target)
        {
            return Err(ClientError::RevertFinalized {
                target: target_header.number,
                finalized: finalized.number,
            });
        }
        let head_block = self
            .store
            .block(&head.hash())?
            .ok_or(ClientError::MissingBlock(head.hash()))?;
        let applied = self.store.revert_to(target, &head_block)?;
        let mut tip = self.tip.write();
        for changes in &applied {
            tip.state.apply(changes);
        }
        tip.head = target_header;
        warn!(
            from = head.number,
            to = tip.head.number,
            "reverted the best chain to switch to a longer fork"
        );
        Ok(())
    }

    /// Executes `branch` (consecutive blocks whose first builds on the canonical block
    /// `ancestor`) on a copy of the ancestor's state, without changing anything: a fork
    /// is checked in full before [`Self::revert_to`] gives up our own blocks for it.
    pub fn verify_branch(&self, ancestor: &Hash, branch: &[Block]) -> Result<(), ClientError> {
        let mut state = self
            .state_at(ancestor)?
            .ok_or(ClientError::MissingBlock(*ancestor))?;
        let mut parent = self
            .store
            .block(ancestor)?
            .ok_or(ClientError::MissingBlock(*ancestor))?
            .header;
        for block in branch {
            let executed = self.runtime.execute_block(&state, &parent, block)?;
            state.apply(&executed.changes);
            parent = block.header.clone();
        }
        Ok(())
    }

    /// Marks the canonical block `hash` (and so its ancestors) final, storing
    /// `justification`; finality never moves backwards.
    pub fn finalize(&self, hash: &Hash, justification: &[u8]) -> Result<bool, ClientError> {
        let _write = self.write_lock.lock();
        let header = self
            .store
            .block(hash)?
            .ok_or(ClientError::MissingBlock(*hash))?
            .header;
        if header.number <= self.tip.read().finalized.number
            || self.store.canonical_hash(header.number)? != Some(*hash)
        {
            return Ok(false);
        }
        self.store.finalize(hash, justification)?;
        self.tip.write().finalized = header.clone();
        self.prune_states()?;
        let _ = self.finalized_heads.send(header);
        Ok(true)
    }

    /// The justification of a finalized block, if it was finalized by votes.
    pub fn justification(&self, hash: &Hash) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self.store.justification(hash)?)
    }

    /// Whether blocks are final as soon as they are the head (single-authority chains).
    pub fn instant_finality(&self) -> bool {
        self.config.instant_finality
    }

    /// Persists the block (one store transaction), then moves the in-memory head, prunes
    /// the pool and notifies subscribers. Caller holds `write_lock`.
    fn commit(
        &self,
        block: &Block,
        changes: &StateChanges,
        rejected: &[Hash],
    ) -> Result<(), ClientError> {
        let hash = block.hash();
        let finalized = self.config.instant_finality.then_some(hash);
        self.store.commit_block(block, changes, finalized)?;
        {
            let mut tip = self.tip.write();
            tip.state.apply(changes);
            debug_assert_eq!(tip.state.root(), block.header.state_root);
            tip.head = block.header.clone();
            if finalized.is_some() {
                tip.finalized = block.header.clone();
            }
            let tip = parking_lot::RwLockWriteGuard::downgrade(tip);
            let nonce = |who: &AccountId| {
                self.runtime
                    .account(&tip.state, who)
                    .map(|a| a.nonce)
                    .unwrap_or(0)
            };
            let mut pool = self.pool.lock();
            let dropped = pool.prune(nonce, rejected, tip.head.number);
            if dropped > 0 {
                debug!(dropped, "pruned the transaction pool");
            }
            // Each sender's next extrinsic must still be valid on the new state (its
            // fee payable; a free call must still apply): one that is not would hold up
            // the sender's later ones behind its nonce forever. Only the cheap checks:
            // a fee-paying call that now fails is included and pays for its failure.
            let next_slot = tip.head.slot() + 1;
            let head_hash = tip.head.hash();
            let validation = Validation::Gossip {
                sample_seed: rand::random(),
            };
            for (hash, xt) in pool.next_of_each_sender(nonce) {
                if let Err(error) = self
                    .runtime
                    .validate_transaction(&tip.state, &head_hash, &xt, next_slot, validation)
                {
                    debug!(hash = %hex_hash(&hash), %error, "pooled extrinsic no longer applies: dropped");
                    pool.remove(&hash);
                }
            }
        }
        self.prune_states()?;
        // Nobody listening is fine.
        let _ = self.new_heads.send(block.header.clone());
        if finalized.is_some() {
            let _ = self.finalized_heads.send(block.header.clone());
        }
        Ok(())
    }

    pub fn subscribe_new_heads(&self) -> broadcast::Receiver<Header> {
        self.new_heads.subscribe()
    }

    pub fn subscribe_finalized_heads(&self) -> broadcast::Receiver<Header> {
        self.finalized_heads.subscribe()
    }

    /// The state root of the in-memory head state (recomputed if needed).
    pub fn best_state_root(&self) -> Hash {
        self.tip.read().state.root()
    }

    /// Reads a raw state value at the head.
    pub fn storage(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.tip.read().state.get(key)
    }
}

fn load_header(store: &Store, hash: &Hash) -> Result<Header, ClientError> {
    Ok(store
        .block(hash)?
        .ok_or(ClientError::MissingBlock(*hash))?
        .header)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Full 0x-prefixed hex of a hash.
pub fn hex_hash(hash: &Hash) -> String {
    format!("0x{}", hex::encode(hash.as_bytes()))
}

#[cfg(feature = "fault-injection")]
mod faults;
#[cfg(feature = "fault-injection")]
pub use faults::OmitReceipts;
mod state_reads;
mod submit;
#[cfg(test)]
mod tests;
