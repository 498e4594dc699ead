//! The transaction pool: extrinsics the runtime judged valid, waiting for a block.
//!
//! The pool does not judge validity itself — the caller validates against the head state
//! with the runtime first — but it owns the bookkeeping: one entry per hash (duplicates
//! are refused), one entry per (sender, nonce) (a second one is refused rather than
//! silently replacing the first), a bound on its size, and ordering. Only *ready*
//! extrinsics are handed to the block builder: for each sender, those whose nonces run
//! consecutively from the sender's on-chain nonce; future ones wait for the gap to fill.
//! After each block, included and stale entries (nonce below the new on-chain nonce),
//! the ones the builder rejected, and the ones that waited longer than the pool's
//! longevity (a future nonce whose gap never filled) are dropped. The client also
//! re-validates each sender's next extrinsic against the new state and drops it when it
//! no longer applies, so a node's own later extrinsics do not queue behind one that an
//! author elsewhere already refused.

use neuroshard_primitives::{AccountId, BlockNumber, Hash, Nonce, SignedExtrinsic};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Why the pool refused an extrinsic (after the runtime accepted it).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PoolError {
    #[error("transaction {0:?} is already in the pool")]
    AlreadyImported(Hash),
    #[error("a transaction from this sender with nonce {0} is already in the pool")]
    NonceTaken(Nonce),
    #[error("the transaction pool is full ({0} transactions)")]
    Full(usize),
}

/// What the runtime said about a valid extrinsic, as far as the pool cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub nonce: Nonce,
    pub priority: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    xt: SignedExtrinsic,
    priority: u64,
    /// Arrival order, the tie-breaker between equal priorities.
    arrival: u64,
    /// Best block number when it arrived.
    since: BlockNumber,
}

/// A bounded pool of validated extrinsics.
#[derive(Debug)]
pub struct TxPool {
    capacity: usize,
    /// Blocks an extrinsic may wait before it is dropped.
    longevity: BlockNumber,
    entries: HashMap<Hash, Entry>,
    by_sender: HashMap<AccountId, BTreeMap<Nonce, Hash>>,
    arrivals: u64,
}

impl TxPool {
    pub fn new(capacity: usize, longevity: BlockNumber) -> Self {
        Self {
            capacity,
            longevity,
            entries: HashMap::new(),
            by_sender: HashMap::new(),
            arrivals: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.entries.contains_key(hash)
    }

    /// Adds a validated extrinsic, arriving while `best` is the best block number;
    /// returns its hash.
    pub fn insert(
        &mut self,
        xt: SignedExtrinsic,
        validity: Validity,
        best: BlockNumber,
    ) -> Result<Hash, PoolError> {
        let hash = xt.hash();
        if self.entries.contains_key(&hash) {
            return Err(PoolError::AlreadyImported(hash));
        }
        let nonces = self.by_sender.get(&xt.signer);
        if nonces.is_some_and(|n| n.contains_key(&validity.nonce)) {
            return Err(PoolError::NonceTaken(validity.nonce));
        }
        if self.entries.len() >= self.capacity {
            return Err(PoolError::Full(self.capacity));
        }
        self.arrivals += 1;
        self.by_sender
            .entry(xt.signer.clone())
            .or_default()
            .insert(validity.nonce, hash);
        self.entries.insert(
            hash,
            Entry {
                xt,
                priority: validity.priority,
                arrival: self.arrivals,
                since: best,
            },
        );
        Ok(hash)
    }

    /// Every pooled extrinsic, in arrival order.
    pub fn all(&self) -> Vec<SignedExtrinsic> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_by_key(|e| e.arrival);
        entries.into_iter().map(|e| e.xt.clone()).collect()
    }

    /// The nonce `sender` should use next: its on-chain nonce, advanced past the pooled
    /// extrinsics that continue it without a gap.
    pub fn next_nonce(&self, sender: &AccountId, on_chain: Nonce) -> Nonce {
        let mut next = on_chain;
        if let Some(nonces) = self.by_sender.get(sender) {
            for nonce in nonces.range(on_chain..).map(|(n, _)| *n) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Extrinsics ready for a block: per sender, the run of consecutive nonces starting at
    /// `on_chain_nonce(sender)`; across senders, higher priority first, then arrival
    /// order, always keeping each sender's nonces ascending. At most `limit` are returned.
    pub fn ready(
        &self,
        mut on_chain_nonce: impl FnMut(&AccountId) -> Nonce,
        limit: usize,
    ) -> Vec<SignedExtrinsic> {
        // Per sender: the ready run, as a queue.
        let mut queues: Vec<std::collections::VecDeque<&Entry>> = Vec::new();
        for (sender, nonces) in &self.by_sender {
            let start = on_chain_nonce(sender);
            let mut queue = std::collections::VecDeque::new();
            for (expected, (nonce, hash)) in (start..).zip(nonces.range(start..)) {
                if *nonce != expected {
                    break;
                }
                if let Some(entry) = self.entries.get(hash) {
                    queue.push_back(entry);
                }
            }
            if !queue.is_empty() {
                queues.push(queue);
            }
        }
        // Repeatedly take the best head among the senders' queues.
        let mut out = Vec::new();
        while out.len() < limit {
            let best = queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.front().map(|e| (i, e)))
                .max_by(|(_, a), (_, b)| {
                    a.priority.cmp(&b.priority).then(b.arrival.cmp(&a.arrival))
                });
            let Some((index, _)) = best else { break };
            if let Some(entry) = queues[index].pop_front() {
                out.push(entry.xt.clone());
            }
        }
        out
    }

    /// Removes one extrinsic by hash.
    pub fn remove(&mut self, hash: &Hash) {
        if let Some(entry) = self.entries.remove(hash) {
            if let Some(nonces) = self.by_sender.get_mut(&entry.xt.signer) {
                nonces.retain(|_, h| h != hash);
                if nonces.is_empty() {
                    self.by_sender.remove(&entry.xt.signer);
                }
            }
        }
    }

    /// Each sender's next extrinsic (the one at its on-chain nonce), if pooled.
    pub fn next_of_each_sender(
        &self,
        mut on_chain_nonce: impl FnMut(&AccountId) -> Nonce,
    ) -> Vec<(Hash, SignedExtrinsic)> {
        self.by_sender
            .iter()
            .filter_map(|(sender, nonces)| {
                let hash = nonces.get(&on_chain_nonce(sender))?;
                let entry = self.entries.get(hash)?;
                Some((*hash, entry.xt.clone()))
            })
            .collect()
    }

    /// After block `best`: drops `rejected` hashes, every extrinsic whose nonce is below
    /// its sender's new on-chain nonce (included, or made stale by one that was), and
    /// every one older than the longevity. Returns how many were dropped.
    pub fn prune(
        &mut self,
        mut on_chain_nonce: impl FnMut(&AccountId) -> Nonce,
        rejected: &[Hash],
        best: BlockNumber,
    ) -> usize {
        let before = self.entries.len();
        for hash in rejected {
            self.remove(hash);
        }
        let mut stale = Vec::new();
        for (sender, nonces) in &self.by_sender {
            let on_chain = on_chain_nonce(sender);
            stale.extend(nonces.range(..on_chain).map(|(_, h)| *h));
        }
        stale.extend(
            self.entries
                .iter()
                .filter(|(_, e)| best.saturating_sub(e.since) > self.longevity)
                .map(|(h, _)| *h),
        );
        for hash in stale {
            self.remove(&hash);
        }
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::crypto::keypair_from_uri;
    use neuroshard_primitives::{BalancesCall, Call, Keypair};
    use sp_core::Pair as _;

    fn xt(who: &Keypair, nonce: Nonce, amount: u128) -> (SignedExtrinsic, Validity) {
        let call = Call::Balances(BalancesCall::transfer_allow_death {
            dest: AccountId::from([9; 32]),
            value: amount,
        });
        (
            SignedExtrinsic::sign(who, &Hash::zero(), nonce, call),
            Validity { nonce, priority: 0 },
        )
    }

    #[test]
    fn readiness_follows_nonces() {
        let alice = keypair_from_uri("//Alice").unwrap();
        let bob = keypair_from_uri("//Bob").unwrap();
        let alice_id: AccountId = alice.public().into();
        let mut pool = TxPool::new(10, 100);
        let first = xt(&alice, 0, 1);
        for (x, v) in [
            xt(&alice, 2, 1),
            first.clone(),
            xt(&bob, 5, 1),
            xt(&alice, 1, 1),
        ] {
            pool.insert(x, v, 0).unwrap();
        }
        let on_chain = |who: &AccountId| if *who == alice_id { 0 } else { 3 };
        let ready = pool.ready(on_chain, 100);
        // Bob's nonce 5 waits for 3 and 4.
        assert_eq!(
            ready.iter().map(|x| x.nonce).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(pool.next_nonce(&alice_id, 0), 3);
        assert_eq!(pool.next_nonce(&bob.public().into(), 3), 3);
        // Duplicates and taken nonces are refused.
        // (sr25519 signatures are randomised, so only a byte-identical copy is a duplicate.)
        let (dup, v) = first;
        assert!(matches!(
            pool.insert(dup, v, 0),
            Err(PoolError::AlreadyImported(_))
        ));
        let (other, v) = xt(&alice, 0, 2);
        assert_eq!(pool.insert(other, v, 0), Err(PoolError::NonceTaken(0)));
        // A block includes nonces 0 and 1.
        let on_chain = |who: &AccountId| if *who == alice_id { 2 } else { 3 };
        assert_eq!(pool.prune(on_chain, &[], 1), 2);
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn bounded() {
        let alice = keypair_from_uri("//Alice").unwrap();
        let mut pool = TxPool::new(2, 100);
        for n in 0..2 {
            let (x, v) = xt(&alice, n, 1);
            pool.insert(x, v, 0).unwrap();
        }
        let (x, v) = xt(&alice, 2, 1);
        assert_eq!(pool.insert(x, v, 0), Err(PoolError::Full(2)));
        let first = pool.all()[0].hash();
        pool.prune(|_| 0, &[first], 1);
        assert_eq!(pool.len(), 1);
        // Waiting longer than the longevity drops it.
        pool.prune(|_| 0, &[], 102);
        assert!(pool.is_empty());
    }

    proptest::proptest! {
        /// Whatever arrives, `ready` hands out, per sender, exactly the consecutive run of
        /// nonces from its on-chain nonce, in ascending order, and respects the limit.
        #[test]
        fn ready_is_per_sender_consecutive(
            txs in proptest::collection::vec((0usize..3, 0u64..8), 0..40),
            on_chain in proptest::collection::vec(0u64..4, 3),
            limit in 0usize..50,
        ) {
            let keys: Vec<Keypair> = (0..3).map(|i| Keypair::from_seed(&[i as u8 + 1; 32])).collect();
            let ids: Vec<AccountId> = keys.iter().map(|k| k.public().into()).collect();
            let mut pool = TxPool::new(1000, 100);
            for (who, nonce) in &txs {
                let (x, v) = xt(&keys[*who], *nonce, 1);
                let _ = pool.insert(x, v, 0);
            }
            let nonce_of = |who: &AccountId| on_chain[ids.iter().position(|i| i == who).unwrap()];
            let ready = pool.ready(nonce_of, limit);
            proptest::prop_assert!(ready.len() <= limit);
            for (i, id) in ids.iter().enumerate() {
                let mine: Vec<u64> = ready.iter().filter(|x| &x.signer == id).map(|x| x.nonce).collect();
                let expected: Vec<u64> = (on_chain[i]..).take(mine.len()).collect();
                proptest::prop_assert_eq!(&mine, &expected);
                if ready.len() < limit {
                    // Nothing ready was held back.
                    proptest::prop_assert_eq!(pool.next_nonce(id, on_chain[i]), on_chain[i] + mine.len() as u64);
                }
            }
        }
    }
}
