//! Headers and blocks in Substrate's layout. A header is Substrate's
//! `{parent_hash, number: Compact, state_root, extrinsics_root, digest}`; the block hash
//! is blake2-256 of its SCALE encoding, so `@polkadot/api` and subxt hash a header they
//! fetched to the node's block hash. The header commits to its parent, the state after
//! the block (`state_root`) and the block's extrinsics (`extrinsics_root`, the
//! [`crate::merkle`] root over the extrinsics' hashes); the consensus fields (slot,
//! author, the author's slot-lottery VRF signature from [`crate::slot_lottery`]) and the
//! author's sr25519 seal over everything else sit in the digest ([`crate::digest`]).
//!
//! Block numbers are `u64` in the node and compact on the wire: a compact integer's bytes
//! depend only on its value, so decoders that read `Compact<u32>` (polkadot.js's default
//! `BlockNumber`) read the same headers until block 2^32.

use crate::crypto::{blake2_256, verify, Hash, Keypair};
use crate::digest::Digest;
use crate::extrinsic::SignedExtrinsic;
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
    /// Root of the whole state after executing this block.
    pub state_root: Hash,
    /// Merkle root of the block's extrinsics.
    pub extrinsics_root: Hash,
    /// Slot, author and VRF signature (PreRuntime item) and the author's seal (Seal).
    pub digest: Digest,
}

impl Header {
    /// What the author signs: blake2-256 of a domain tag and the header encoded as
    /// Substrate encodes it with the seal item removed (BABE's pre-hash, tagged).
    pub fn pre_hash(&self) -> Hash {
        let unsealed = (
            &self.parent_hash,
            parity_scale_codec::Compact(self.number),
            &self.state_root,
            &self.extrinsics_root,
            vec![self.digest.pre.item()],
        );
        blake2_256(&(SEAL_DOMAIN, unsealed).encode())
    }

    /// The block hash: blake2-256 of the whole encoded header, seal included.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }

    /// The slot the block was authored in.
    pub fn slot(&self) -> u64 {
        self.digest.pre.slot
    }

    /// The block author.
    pub fn author(&self) -> &crate::AccountId {
        &self.digest.pre.author
    }

    /// Signs the header as `author` (which must equal the pre-digest's author).
    pub fn seal_with(&mut self, author: &Keypair) {
        self.digest.seal = author.sign(self.pre_hash().as_bytes());
    }

    /// True when the seal is the author's valid signature.
    pub fn seal_is_valid(&self) -> bool {
        verify(&self.digest.seal, self.pre_hash().as_bytes(), self.author())
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
    use crate::crypto::{keypair_from_uri, Signature};
    use crate::digest::PreDigest;

    #[test]
    fn seal_round_trip_and_tamper() {
        let alice = keypair_from_uri("//Alice").unwrap();
        let mut header = Header {
            parent_hash: Hash::zero(),
            number: 5,
            state_root: blake2_256(b"state"),
            extrinsics_root: Hash::zero(),
            digest: Digest {
                pre: PreDigest {
                    slot: 99,
                    author: alice.public().into(),
                    vrf: crate::slot_lottery::sign(&alice, &Hash::zero(), 99),
                },
                seal: Signature::from_raw([0; 64]),
            },
        };
        header.seal_with(&alice);
        assert!(header.seal_is_valid());
        let decoded = Header::decode(&mut &header.encode()[..]).unwrap();
        assert_eq!(decoded.hash(), header.hash());
        header.number = 6;
        assert!(!header.seal_is_valid());
        // The VRF signature is sealed too.
        header.number = 5;
        header.digest.pre.vrf = crate::slot_lottery::sign(&alice, &Hash::zero(), 100);
        assert!(!header.seal_is_valid());
    }
}
