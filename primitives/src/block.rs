//! Headers and blocks. A header commits to its parent, the state after the block
//! (`state_root`) and the block's extrinsics (`extrinsics_root`), carries the author's
//! slot-lottery VRF signature ([`crate::slot_lottery`]), and the author seals it with an
//! sr25519 signature over everything else.

use crate::crypto::{blake2_256, verify, AccountId, Hash, Keypair, Signature};
use crate::extrinsic::SignedExtrinsic;
use crate::slot_lottery::VrfSignature;
use crate::units::BlockNumber;
use parity_scale_codec::{Decode, Encode};
use sp_core::Pair as _;

const SEAL_DOMAIN: &[u8] = b"neuroshard/seal/v1";

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Header {
    pub parent_hash: Hash,
    #[codec(compact)]
    pub number: BlockNumber,
    /// Consensus slot the block was authored in; slot * slot_duration is its time.
    pub slot: u64,
    /// Root of the whole state after executing this block.
    pub state_root: Hash,
    /// Merkle root of the block's extrinsics.
    pub extrinsics_root: Hash,
    /// The block author, who signs the seal.
    pub author: AccountId,
    /// The author's VRF signature over (chain randomness before the block, slot): its
    /// output becomes the chain's next randomness, which draws later slots' leaders.
    pub vrf: VrfSignature,
    /// The author's signature over [`Header::pre_hash`].
    pub seal: Signature,
}

impl Header {
    /// The hash of the header without its seal: what the author signs.
    pub fn pre_hash(&self) -> Hash {
        let unsealed = (
            &self.parent_hash,
            parity_scale_codec::Compact(self.number),
            self.slot,
            &self.state_root,
            &self.extrinsics_root,
            &self.author,
            &self.vrf,
        );
        blake2_256(&(SEAL_DOMAIN, unsealed).encode())
    }

    /// The block hash: blake2-256 of the whole encoded header, seal included.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }

    /// Signs the header as `author` (which must equal `self.author`).
    pub fn seal_with(&mut self, author: &Keypair) {
        self.seal = author.sign(self.pre_hash().as_bytes());
    }

    /// True when the seal is the author's valid signature.
    pub fn seal_is_valid(&self) -> bool {
        verify(&self.seal, self.pre_hash().as_bytes(), &self.author)
    }
}

/// A header with its extrinsics.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Block {
    pub header: Header,
    pub extrinsics: Vec<SignedExtrinsic>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// The extrinsics root of a block body.
pub fn extrinsics_root(extrinsics: &[SignedExtrinsic]) -> Hash {
    crate::merkle::root(extrinsics.iter().map(|x| x.hash()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keypair_from_uri;

    #[test]
    fn seal_round_trip_and_tamper() {
        let alice = keypair_from_uri("//Alice").unwrap();
        let mut header = Header {
            parent_hash: Hash::zero(),
            number: 5,
            slot: 99,
            state_root: blake2_256(b"state"),
            extrinsics_root: Hash::zero(),
            author: alice.public().into(),
            vrf: crate::slot_lottery::sign(&alice, &Hash::zero(), 99),
            seal: Signature::from_raw([0; 64]),
        };
        header.seal_with(&alice);
        assert!(header.seal_is_valid());
        let decoded = Header::decode(&mut &header.encode()[..]).unwrap();
        assert_eq!(decoded.hash(), header.hash());
        header.number = 6;
        assert!(!header.seal_is_valid());
        // The VRF signature is sealed too.
        header.number = 5;
        header.vrf = crate::slot_lottery::sign(&alice, &Hash::zero(), 100);
        assert!(!header.seal_is_valid());
    }
}
