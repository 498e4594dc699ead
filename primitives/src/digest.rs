//! Header digests in Substrate's layout. On the wire a digest is Substrate's
//! `Digest { logs: Vec<DigestItem> }` with `DigestItem`'s variant indices (Other 0,
//! Consensus 4, Seal 5, PreRuntime 6, RuntimeEnvironmentUpdated 8), so `@polkadot/api`,
//! subxt and explorers decode NeuroShard headers with their stock types and hash them to
//! the same block hash as the node.
//!
//! A NeuroShard digest holds exactly two items, in this order, both under the engine id
//! [`ENGINE_ID`] (`b"NSHD"`), as BABE's digest does under `b"BABE"`:
//! 1. `PreRuntime(b"NSHD", SCALE(PreDigest { slot: u64, author: AccountId32, vrf }))`:
//!    the slot, the author and the author's slot-lottery VRF signature (32-byte
//!    pre-output then 64-byte proof);
//! 2. `Seal(b"NSHD", SCALE([u8; 64]))`: the author's sr25519 signature over the header
//!    without the seal (see [`crate::block::Header::pre_hash`]).
//!
//! Anything else (another engine, a missing or extra item, trailing bytes inside an
//! item) fails to decode, so a decoded [`Digest`] is always well-formed and consensus
//! code reads its fields directly.

use crate::crypto::{AccountId, Signature};
use crate::slot_lottery::VrfSignature;
use parity_scale_codec::{Decode, DecodeAll, Encode, Error, Input, Output};
use scale_info::build::Fields;
use scale_info::{Path, Type, TypeInfo};

/// Substrate's 4-byte consensus engine id.
pub type ConsensusEngineId = [u8; 4];

/// The engine id of NeuroShard's slot lottery, in both its digest items.
pub const ENGINE_ID: ConsensusEngineId = *b"NSHD";

/// One digest log, with Substrate's variant indices.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum DigestItem {
    #[codec(index = 0)]
    Other(Vec<u8>),
    #[codec(index = 4)]
    Consensus(ConsensusEngineId, Vec<u8>),
    #[codec(index = 5)]
    Seal(ConsensusEngineId, Vec<u8>),
    #[codec(index = 6)]
    PreRuntime(ConsensusEngineId, Vec<u8>),
    #[codec(index = 8)]
    RuntimeEnvironmentUpdated,
}

/// What the author declares before the runtime runs: the PreRuntime item's payload.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct PreDigest {
    /// Consensus slot the block was authored in; slot * slot_duration is its time.
    pub slot: u64,
    /// The block author, who signs the seal.
    pub author: AccountId,
    /// The author's VRF signature over (chain randomness before the block, slot): its
    /// output becomes the chain's next randomness, which draws later slots' leaders.
    pub vrf: VrfSignature,
}

impl PreDigest {
    /// The PreRuntime digest item carrying this pre-digest.
    pub fn item(&self) -> DigestItem {
        DigestItem::PreRuntime(ENGINE_ID, self.encode())
    }
}

/// A NeuroShard header digest: the pre-digest and the author's seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub pre: PreDigest,
    /// The author's signature over [`crate::block::Header::pre_hash`].
    pub seal: Signature,
}

/// Why a list of digest items is not a NeuroShard digest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a header digest holds exactly a PreRuntime and a Seal item, got {0} items")]
    Count(usize),
    #[error("the first digest item is not PreRuntime under engine NSHD")]
    NotPreRuntime,
    #[error("the last digest item is not Seal under engine NSHD")]
    NotSeal,
    #[error("the PreRuntime payload is not a pre-digest: {0}")]
    PreDigest(String),
    #[error("the Seal payload is not a 64-byte signature: {0}")]
    Seal(String),
}

impl Digest {
    /// The digest as Substrate's log items.
    pub fn logs(&self) -> Vec<DigestItem> {
        vec![
            self.pre.item(),
            DigestItem::Seal(ENGINE_ID, self.seal.0.encode()),
        ]
    }

    /// Parses Substrate log items into a digest, refusing anything but the two items.
    pub fn from_logs(logs: &[DigestItem]) -> Result<Self, DigestError> {
        let [pre, seal] = logs else {
            return Err(DigestError::Count(logs.len()));
        };
        let DigestItem::PreRuntime(ENGINE_ID, pre) = pre else {
            return Err(DigestError::NotPreRuntime);
        };
        let DigestItem::Seal(ENGINE_ID, seal) = seal else {
            return Err(DigestError::NotSeal);
        };
        let pre = PreDigest::decode_all(&mut pre.as_slice())
            .map_err(|e| DigestError::PreDigest(e.to_string()))?;
        let seal = <[u8; 64]>::decode_all(&mut seal.as_slice())
            .map_err(|e| DigestError::Seal(e.to_string()))?;
        Ok(Self {
            pre,
            seal: Signature::from_raw(seal),
        })
    }
}

impl Encode for Digest {
    fn size_hint(&self) -> usize {
        self.logs().size_hint()
    }

    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        self.logs().encode_to(dest)
    }
}

impl Decode for Digest {
    fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
        let logs = Vec::<DigestItem>::decode(input)?;
        Self::from_logs(&logs)
            .map_err(|_| Error::from("not a NeuroShard digest (PreRuntime and Seal under NSHD)"))
    }
}

/// Described as Substrate's `Digest { logs: Vec<DigestItem> }`, which is its encoding.
impl TypeInfo for Digest {
    type Identity = Self;

    fn type_info() -> Type {
        Type::builder()
            .path(Path::new("Digest", module_path!()))
            .composite(Fields::named().field(|f| {
                f.ty::<Vec<DigestItem>>()
                    .name("logs")
                    .type_name("Vec<DigestItem>")
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{keypair_from_uri, Hash};
    use sp_core::Pair as _;

    fn digest() -> Digest {
        let alice = keypair_from_uri("//Alice").unwrap();
        Digest {
            pre: PreDigest {
                slot: 7,
                author: alice.public().into(),
                vrf: crate::slot_lottery::sign(&alice, &Hash::zero(), 7),
            },
            seal: Signature::from_raw([3; 64]),
        }
    }

    #[test]
    fn encodes_as_substrate_logs_and_round_trips() {
        let d = digest();
        let bytes = d.encode();
        // Compact(2) items, then PreRuntime (6) under NSHD.
        assert_eq!(&bytes[..6], &[8, 6, b'N', b'S', b'H', b'D']);
        assert_eq!(
            Vec::<DigestItem>::decode_all(&mut &bytes[..]).unwrap(),
            d.logs()
        );
        assert_eq!(Digest::decode_all(&mut &bytes[..]).unwrap(), d);
    }

    #[test]
    fn anything_but_the_two_items_is_refused() {
        let d = digest();
        let mut logs = d.logs();
        let decode = |logs: &Vec<DigestItem>| Digest::decode(&mut &logs.encode()[..]);
        logs.push(DigestItem::Other(vec![1]));
        assert!(decode(&logs).is_err());
        logs.truncate(1);
        assert!(decode(&logs).is_err());
        let swapped = vec![d.logs()[1].clone(), d.logs()[0].clone()];
        assert!(decode(&swapped).is_err());
        let mut other_engine = d.logs();
        other_engine[0] = DigestItem::PreRuntime(*b"BABE", d.pre.encode());
        assert!(decode(&other_engine).is_err());
        let mut trailing = d.logs();
        let mut pre = d.pre.encode();
        pre.push(0);
        trailing[0] = DigestItem::PreRuntime(ENGINE_ID, pre);
        assert!(decode(&trailing).is_err());
        let mut short_seal = d.logs();
        short_seal[1] = DigestItem::Seal(ENGINE_ID, vec![0; 63]);
        assert!(decode(&short_seal).is_err());
    }
}
