//! Finality by validator votes. Every validator signs a vote for its best block whenever
//! the best block changes and gossips it; each node keeps the latest vote of every
//! validator and finalizes the highest canonical block that validators holding at least
//! two thirds of the bond have voted for, directly or through a descendant. The votes that
//! reached the threshold are stored with the block as its justification.
//!
//! A vote is only counted when its signature verifies (domain-separated and bound to the
//! chain's genesis hash) and its voter is in the validator set at our best block. Fork
//! choice never reverts a finalized block ([`crate::Client::revert_to`]), so with
//! two of four equal validators offline nothing new is finalized until they return.
//!
//! Limits (documented, not hidden): votes are "latest vote per validator", not rounds as
//! in GRANDPA, so safety relies on honest validators not switching forks below a block a
//! supermajority already voted for; two conflicting votes at one height by one key are
//! kept as evidence in the log.

use crate::client::{hex_hash, Client};
use neuroshard_primitives::{crypto, AccountId, BlockNumber, Hash, Keypair, Signature};
use neuroshard_runtime::Runtime;
use parity_scale_codec::{Decode, Encode};
use parking_lot::Mutex;
use sp_core::Pair as _;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{debug, info, warn};

const VOTE_CONTEXT: &[u8] = b"neuroshard/finality-vote/1";

/// A validator's signed statement that `hash` (at `number`) is its best block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Vote {
    pub hash: Hash,
    #[codec(compact)]
    pub number: BlockNumber,
    pub voter: AccountId,
    pub signature: Signature,
}

impl Vote {
    fn payload(genesis: &Hash, hash: &Hash, number: BlockNumber) -> Vec<u8> {
        (VOTE_CONTEXT, genesis, hash, number).encode()
    }

    pub fn sign(key: &Keypair, genesis: &Hash, hash: Hash, number: BlockNumber) -> Self {
        Self {
            hash,
            number,
            voter: key.public().into(),
            signature: key.sign(&Self::payload(genesis, &hash, number)),
        }
    }

    pub fn verify(&self, genesis: &Hash) -> bool {
        crypto::verify(
            &self.signature,
            &Self::payload(genesis, &self.hash, self.number),
            &self.voter,
        )
    }
}

/// The votes that finalized a block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Justification {
    pub votes: Vec<Vote>,
}

/// What the gadget made of a vote from the network.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    Counted,
    /// Old or already known: harmless.
    Stale,
    /// Bad signature or not a validator.
    Invalid,
}

/// See the module docs.
pub struct FinalityGadget {
    client: Arc<Client>,
    /// This node's key when it is a validator.
    key: Option<Keypair>,
    latest: Mutex<HashMap<AccountId, Vote>>,
}

impl FinalityGadget {
    pub fn new(client: Arc<Client>, key: Option<Keypair>) -> Self {
        Self {
            client,
            key,
            latest: Mutex::new(HashMap::new()),
        }
    }

    /// Validators and their weights (bond; 1 when none is bonded) at the best block.
    fn weights(&self) -> Vec<(AccountId, u128)> {
        self.client.with_best_state(|state, _| {
            Runtime::validators(state)
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    let bonded = self
                        .client
                        .runtime()
                        .account(state, &v)
                        .map(|a| a.bonded)
                        .unwrap_or(0);
                    (v, bonded.max(1))
                })
                .collect()
        })
    }

    /// Signs a vote for the best block when this node is a validator.
    pub fn vote_for_best(&self) -> Option<Vote> {
        let key = self.key.as_ref()?;
        let me: AccountId = key.public().into();
        if !self.weights().iter().any(|(v, _)| *v == me) {
            return None;
        }
        let head = self.client.best_header();
        let vote = Vote::sign(key, &self.client.genesis_hash(), head.hash(), head.number);
        self.record(vote.clone());
        self.try_finalize();
        Some(vote)
    }

    /// Checks and counts a vote from a peer.
    pub fn on_vote(&self, vote: Vote) -> VoteOutcome {
        if vote.number <= self.client.finalized_header().number {
            return VoteOutcome::Stale;
        }
        if !self.weights().iter().any(|(v, _)| *v == vote.voter)
            || !vote.verify(&self.client.genesis_hash())
        {
            return VoteOutcome::Invalid;
        }
        if !self.record(vote) {
            return VoteOutcome::Stale;
        }
        self.try_finalize();
        VoteOutcome::Counted
    }

    /// Keeps `vote` if it is the voter's newest; true when kept.
    fn record(&self, vote: Vote) -> bool {
        let mut latest = self.latest.lock();
        match latest.get(&vote.voter) {
            Some(old) if old.number > vote.number || *old == vote => false,
            Some(old) if old.number == vote.number => {
                warn!(
                    voter = %crypto::ss58(&vote.voter),
                    number = vote.number,
                    first = %hex_hash(&old.hash),
                    second = %hex_hash(&vote.hash),
                    "conflicting finality votes at one height (equivocation evidence)"
                );
                false
            }
            _ => {
                latest.insert(vote.voter.clone(), vote);
                true
            }
        }
    }

    /// Finalizes the highest canonical block backed by >= 2/3 of the bond.
    pub fn try_finalize(&self) {
        let weights = self.weights();
        let total: u128 = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return;
        }
        let weight_of: HashMap<&AccountId, u128> = weights.iter().map(|(v, w)| (v, *w)).collect();
        let mut canonical: Vec<Vote> = self
            .latest
            .lock()
            .values()
            .filter(|v| weight_of.contains_key(&v.voter))
            .filter(|v| matches!(self.client.block_hash(v.number), Ok(Some(h)) if h == v.hash))
            .cloned()
            .collect();
        canonical.sort_by_key(|v| std::cmp::Reverse(v.number));
        let mut backing = 0u128;
        for (i, vote) in canonical.iter().enumerate() {
            backing += weight_of.get(&vote.voter).copied().unwrap_or(0);
            if backing * 3 >= total * 2 {
                let number = vote.number;
                let Ok(Some(hash)) = self.client.block_hash(number) else {
                    return;
                };
                let justification = Justification {
                    votes: canonical[..=i].to_vec(),
                };
                match self.client.finalize(&hash, &justification.encode()) {
                    Ok(true) => info!(
                        number,
                        hash = %hex_hash(&hash),
                        votes = i + 1,
                        "finalized by validator votes"
                    ),
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "cannot finalize"),
                }
                return;
            }
        }
        debug!(backing, total, "no block has a supermajority yet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_verify_only_on_their_chain_and_unchanged() {
        let key = crypto::keypair_from_uri("//Alice").unwrap();
        let genesis = Hash::repeat_byte(1);
        let vote = Vote::sign(&key, &genesis, Hash::repeat_byte(2), 7);
        assert!(vote.verify(&genesis));
        assert!(!vote.verify(&Hash::repeat_byte(9)));
        let mut moved = vote.clone();
        moved.number = 8;
        assert!(!moved.verify(&genesis));
        let decoded = Vote::decode(&mut &vote.encode()[..]).unwrap();
        assert_eq!(decoded, vote);
    }
}
