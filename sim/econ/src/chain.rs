//! The chain the agents live on: the real runtime (`neuroshard_runtime::Runtime`) in
//! memory. Every block is built by the author the slot lottery draws
//! ([`Runtime::build_block`], the author's path) from the agents' signed extrinsics,
//! sealed with the author's key, and imported ([`Runtime::execute_block`], the
//! importer's path: signatures, nonces, state root) before its changes are applied.
//! Nothing here decides an economic outcome: balances, rewards, fees and slashes are
//! what the runtime's pallets computed.

use anyhow::{anyhow, ensure, Context, Result};
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    slot_lottery, AccountId, Call, Event, Header, Keypair, SignedExtrinsic,
};
use neuroshard_runtime::{GenesisConfig, Runtime, StateDb};
use sp_core::Pair as _;
use std::collections::HashMap;

/// A key and its account.
#[derive(Clone)]
pub struct Key {
    pub pair: Keypair,
    pub account: AccountId,
}

impl Key {
    /// The dev-style key of `uri` (e.g. `//econ/honest/0`).
    pub fn from_uri(uri: &str) -> Result<Self> {
        let pair = keypair_from_uri(uri).with_context(|| format!("deriving {uri}"))?;
        let account = pair.public().into();
        Ok(Self { pair, account })
    }
}

/// What one block did.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    pub events: Vec<Event>,
    /// Candidates the author left out (invalid), by signer.
    pub rejected: Vec<AccountId>,
}

/// The runtime, its state and head, and every agent's key.
pub struct Chain {
    pub runtime: Runtime,
    pub state: StateDb,
    pub head: Header,
    keys: HashMap<AccountId, Keypair>,
    /// Extrinsics signed for the block being assembled, per signer (their nonces follow
    /// the state's).
    pending: HashMap<AccountId, u64>,
    /// Import every block too (the importer's checks), not only build it.
    pub import: bool,
}

impl Chain {
    /// The genesis of `config`, with the keys of every account that will sign.
    pub fn new(config: &GenesisConfig, keys: &[Key]) -> Result<Self> {
        let (state, head) = Runtime::build_genesis(config).map_err(|e| anyhow!("{e}"))?;
        Ok(Self {
            runtime: Runtime::new(head.hash()),
            state,
            head,
            keys: keys
                .iter()
                .map(|k| (k.account.clone(), k.pair.clone()))
                .collect(),
            pending: HashMap::new(),
            import: true,
        })
    }

    /// `call` signed by `who` with its next nonce (counting what it signed for the
    /// block being assembled).
    pub fn sign(&mut self, who: &AccountId, call: Call) -> Result<SignedExtrinsic> {
        let pair = self
            .keys
            .get(who)
            .ok_or_else(|| anyhow!("no key for {who}"))?;
        let base = self
            .runtime
            .account(&self.state, who)
            .map_err(|e| anyhow!("{e}"))?
            .nonce;
        let extra = self.pending.entry(who.clone()).or_insert(0);
        let xt = SignedExtrinsic::sign(pair, &self.runtime.genesis_hash(), base + *extra, call);
        *extra += 1;
        Ok(xt)
    }

    /// The slot of the next block.
    pub fn next_slot(&self) -> u64 {
        self.head.slot() + 1
    }

    /// Builds the next block from `candidates` as its drawn author, seals it, imports it
    /// and applies it.
    pub fn produce(&mut self, candidates: Vec<SignedExtrinsic>) -> Result<BlockOutcome> {
        self.pending.clear();
        let slot = self.next_slot();
        let author = Runtime::expected_author(&self.state, slot)
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("no author for slot {slot}"))?;
        let pair = self
            .keys
            .get(&author)
            .ok_or_else(|| anyhow!("no key for author {author}"))?
            .clone();
        let randomness = Runtime::randomness(&self.state).map_err(|e| anyhow!("{e}"))?;
        let vrf = slot_lottery::sign(&pair, &randomness, slot);
        let signers: HashMap<_, _> = candidates
            .iter()
            .map(|x| (x.hash(), x.signer.clone()))
            .collect();
        let built = self
            .runtime
            .build_block(&self.state, &self.head, slot, author, vrf, candidates)
            .map_err(|e| anyhow!("building block: {e}"))?;
        let mut block = built.block;
        block.header.seal_with(&pair);
        let changes = if self.import {
            let executed = self
                .runtime
                .execute_block(&self.state, &self.head, &block)
                .map_err(|e| anyhow!("importing block {}: {e}", block.header.number))?;
            ensure!(
                executed.events == built.events,
                "import and authoring disagree on block {}'s events",
                block.header.number
            );
            executed.changes
        } else {
            built.changes
        };
        self.state.apply(&changes);
        self.head = block.header;
        let rejected = built
            .rejected
            .iter()
            .filter_map(|(hash, _)| signers.get(hash).cloned())
            .collect();
        Ok(BlockOutcome {
            events: built.events,
            rejected,
        })
    }
}
