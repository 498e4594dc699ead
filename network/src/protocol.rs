//! The names and limits of NeuroShard's wire protocols and gossip topics. Every node on a
//! chain derives the same names from the chain's genesis hash, so two chains never mix
//! their gossip even when their peers meet.

use neuroshard_primitives::Hash;

/// A request-response protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The shard protocol: inference calls (hidden states in, hidden states or logits
    /// out; receipts), verification calls (spot-check material) and training calls
    /// (pseudo-gradients, adapter snapshots).
    Activations,
    /// Block sync: headers, blocks and justifications by number.
    Sync,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Activations, Protocol::Sync];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Activations => "/neuroshard/activations/6",
            Protocol::Sync => "/neuroshard/sync/1",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Largest request a peer may send us.
    pub fn max_request(self) -> usize {
        match self {
            // A prefill of a 4096-token prompt in f32 at hidden 1024 is 16 MiB.
            Protocol::Activations => 32 << 20,
            Protocol::Sync => 4 << 10,
        }
    }

    /// Largest response a peer may send us.
    pub fn max_response(self) -> usize {
        match self {
            // Logits for a batch of draft positions (vocab 49152 x f32 x 16 positions = 3 MiB).
            Protocol::Activations => 32 << 20,
            Protocol::Sync => MAX_GOSSIP_BYTES * 4,
        }
    }
}

/// Largest gossip message (a block with thousands of receipts).
pub const MAX_GOSSIP_BYTES: usize = 8 << 20;

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Transactions,
    Blocks,
    Votes,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Transactions, Topic::Blocks, Topic::Votes];

    fn suffix(self) -> &'static str {
        match self {
            Topic::Transactions => "tx",
            Topic::Blocks => "blocks",
            Topic::Votes => "votes",
        }
    }

    /// The topic string on the chain with `genesis` hash.
    pub fn name(self, genesis: &Hash) -> String {
        format!(
            "/neuroshard/{}/{}/1",
            hex::encode(&genesis.as_bytes()[..8]),
            self.suffix()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_topics_are_per_chain() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_name(p.name()), Some(p));
        }
        assert_eq!(Protocol::from_name("/other/1"), None);
        let a = Hash::repeat_byte(1);
        let b = Hash::repeat_byte(2);
        assert_ne!(Topic::Blocks.name(&a), Topic::Blocks.name(&b));
        assert_ne!(Topic::Blocks.name(&a), Topic::Votes.name(&a));
    }
}
