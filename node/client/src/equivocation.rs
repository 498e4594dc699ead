//! Catching validators that seal two blocks for one slot. Every block header seen on the
//! gossip topic (with a valid seal) is remembered by (author, slot) for a while; a second,
//! different header for the same pair is equivocation, and a node with a key submits both
//! headers as `staking.report_equivocation`, which slashes the author on chain.

use crate::client::Client;
use neuroshard_primitives::{
    crypto, AccountId, Call, Header, Keypair, SignedExtrinsic, StakingCall,
};
use parking_lot::Mutex;
use sp_core::Pair as _;
use std::collections::{BTreeMap, HashSet};
use tracing::{info, warn};

/// Slots remembered per detector (older ones are forgotten).
pub const REMEMBERED_SLOTS: usize = 4096;

/// See the module docs.
#[derive(Default)]
pub struct EquivocationDetector {
    seen: Mutex<BTreeMap<(u64, AccountId), Header>>,
    reported: Mutex<HashSet<(u64, AccountId)>>,
}

impl EquivocationDetector {
    /// Remembers `header`; returns the earlier conflicting header when it is one.
    pub fn observe(&self, header: &Header) -> Option<Header> {
        if !header.seal_is_valid() {
            return None;
        }
        let key = (header.slot(), header.author().clone());
        let mut seen = self.seen.lock();
        match seen.get(&key) {
            Some(first) if first.hash() != header.hash() => {
                if self.reported.lock().insert(key) {
                    return Some(first.clone());
                }
                None
            }
            Some(_) => None,
            None => {
                seen.insert(key, header.clone());
                while seen.len() > REMEMBERED_SLOTS {
                    seen.pop_first();
                }
                None
            }
        }
    }

    /// Submits the evidence signed by `reporter`.
    pub fn report(client: &Client, reporter: &Keypair, first: Header, second: Header) {
        let who: AccountId = reporter.public().into();
        warn!(
            author = %crypto::ss58(first.author()),
            slot = first.slot(),
            "equivocation: two blocks sealed for one slot; reporting it"
        );
        let call = Call::Staking(StakingCall::ReportEquivocation {
            first: Box::new(first),
            second: Box::new(second),
        });
        let result = client
            .next_nonce(&who)
            .map_err(|e| e.to_string())
            .and_then(|nonce| {
                let xt = SignedExtrinsic::sign(reporter, &client.genesis_hash(), nonce, call);
                client.submit(xt).map_err(|e| e.to_string())
            });
        match result {
            Ok(_) => info!("equivocation report submitted"),
            Err(e) => warn!(error = %e, "equivocation report not submitted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::Hash;

    #[test]
    fn a_second_seal_for_one_slot_is_caught_once() {
        let key = crypto::keypair_from_uri("//Bob").unwrap();
        let mut header = Header {
            parent_hash: Hash::repeat_byte(1),
            number: 5,
            state_root: Hash::zero(),
            extrinsics_root: Hash::zero(),
            digest: neuroshard_primitives::Digest {
                pre: neuroshard_primitives::PreDigest {
                    slot: 77,
                    author: key.public().into(),
                    vrf: neuroshard_primitives::slot_lottery::sign(&key, &Hash::zero(), 77),
                },
                seal: neuroshard_primitives::Signature::from_raw([0; 64]),
            },
        };
        header.seal_with(&key);
        let mut twin = header.clone();
        twin.seal_with(&key); // sr25519 signatures are randomised: another hash
        assert_ne!(header.hash(), twin.hash());
        let d = EquivocationDetector::default();
        assert_eq!(d.observe(&header), None);
        assert_eq!(d.observe(&header), None);
        assert_eq!(d.observe(&twin), Some(header.clone()));
        assert_eq!(d.observe(&twin), None, "reported once");
        // Forged seals are not evidence.
        let mut forged = header.clone();
        forged.digest.pre.slot = 78;
        assert_eq!(d.observe(&forged), None);
        forged.number = 9;
        assert_eq!(d.observe(&forged), None);
    }
}
