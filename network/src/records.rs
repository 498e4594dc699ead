//! Shard provider records in the Kademlia DHT. A node serving layer ranges of a model
//! (1) announces itself as a Kademlia *provider* of the model key and of one key per layer
//! range it serves (key = blake2(model hash ++ start ++ end)), and (2) stores one signed
//! [`ProviderRecord`] under its per-peer record key saying which ranges it serves, how busy
//! it is and how fast it has been. Anyone can store anything in a DHT, so a record is only
//! believed when it is signed by the libp2p key whose peer id it names.

use blake2::digest::{consts::U32, Digest};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::kad::RecordKey;
use libp2p::PeerId;
use neuroshard_primitives::{Hash, LayerRange};
use parity_scale_codec::{Decode, Encode};

type Blake2b256 = blake2::Blake2b<U32>;

/// Largest encoded record we accept.
pub const MAX_RECORD_BYTES: usize = 4096;
/// Most layer ranges one provider may announce.
pub const MAX_SHARDS_PER_RECORD: usize = 64;

fn key_of(parts: &[&[u8]]) -> RecordKey {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    RecordKey::new(&h.finalize().to_vec())
}

/// Provider key of every node serving any range of `model`.
pub fn model_key(model: &Hash) -> RecordKey {
    key_of(&[b"neuroshard/model", model.as_bytes()])
}

/// Provider key of the nodes serving exactly `layers` of `model`.
pub fn shard_key(model: &Hash, layers: LayerRange) -> RecordKey {
    key_of(&[
        b"neuroshard/shard",
        model.as_bytes(),
        &layers.start.to_le_bytes(),
        &layers.end.to_le_bytes(),
    ])
}

/// Key of `peer`'s [`ProviderRecord`] for `model`.
pub fn record_key(model: &Hash, peer: &PeerId) -> RecordKey {
    key_of(&[b"neuroshard/provider", model.as_bytes(), &peer.to_bytes()])
}

/// What a provider says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProviderInfo {
    /// The provider's libp2p peer id bytes.
    pub peer: Vec<u8>,
    /// The chain account that signs its receipts (32 bytes).
    pub account: [u8; 32],
    pub model: Hash,
    pub shards: Vec<LayerRange>,
    /// Sessions it is serving now.
    pub active_sessions: u32,
    /// Recent serving throughput in milli-tokens per second (0: not measured yet).
    pub throughput_milli: u64,
    /// Unix milliseconds when it was issued; stale records are ignored.
    pub issued_at_ms: u64,
}

/// A [`ProviderInfo`] with the protobuf-encoded public key and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProviderRecord {
    pub info: ProviderInfo,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why a record was not believed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {0} bytes is larger than {MAX_RECORD_BYTES}")]
    TooLarge(usize),
    #[error("record does not decode")]
    Malformed,
    #[error("record's public key does not decode")]
    BadKey,
    #[error("record is signed by another peer than the one it names")]
    WrongPeer,
    #[error("record signature is invalid")]
    BadSignature,
    #[error("record announces {0} shards, more than {MAX_SHARDS_PER_RECORD}")]
    TooManyShards(usize),
}

const SIGNING_CONTEXT: &[u8] = b"neuroshard/provider-record/1";

impl ProviderRecord {
    /// Signs `info` with the node's libp2p identity.
    pub fn sign(info: ProviderInfo, key: &Keypair) -> Self {
        let payload = [SIGNING_CONTEXT, &info.encode()].concat();
        let signature = key.sign(&payload).unwrap_or_default();
        Self {
            info,
            public_key: key.public().encode_protobuf(),
            signature,
        }
    }

    /// Decodes and verifies a record from the DHT.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let record = Self::decode(&mut &bytes[..]).map_err(|_| RecordError::Malformed)?;
        if record.info.shards.len() > MAX_SHARDS_PER_RECORD {
            return Err(RecordError::TooManyShards(record.info.shards.len()));
        }
        let public =
            PublicKey::try_decode_protobuf(&record.public_key).map_err(|_| RecordError::BadKey)?;
        if PeerId::from_public_key(&public).to_bytes() != record.info.peer {
            return Err(RecordError::WrongPeer);
        }
        let payload = [SIGNING_CONTEXT, &record.info.encode()].concat();
        if !public.verify(&payload, &record.signature) {
            return Err(RecordError::BadSignature);
        }
        Ok(record)
    }

    /// The provider's peer id (valid after [`Self::decode_verified`]).
    pub fn peer_id(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.info.peer).ok()
    }
}

/// Whether a DHT record someone asks us to store (`key`, `value`) is a verified
/// [`ProviderRecord`] stored under its own provider's key; nothing else is kept.
pub fn acceptable(key: &RecordKey, value: &[u8]) -> bool {
    ProviderRecord::decode_verified(value).is_ok_and(|r| {
        r.peer_id()
            .is_some_and(|p| *key == record_key(&r.info.model, &p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(key: &Keypair) -> ProviderInfo {
        ProviderInfo {
            peer: key.public().to_peer_id().to_bytes(),
            account: [7; 32],
            model: Hash::repeat_byte(3),
            shards: vec![LayerRange { start: 0, end: 10 }],
            active_sessions: 2,
            throughput_milli: 30_000,
            issued_at_ms: 1,
        }
    }

    #[test]
    fn signed_records_verify_and_tampering_is_caught() {
        let key = Keypair::generate_ed25519();
        let record = ProviderRecord::sign(info(&key), &key);
        let bytes = record.encode();
        assert_eq!(ProviderRecord::decode_verified(&bytes).unwrap(), record);

        let mut forged = record.clone();
        forged.info.throughput_milli = 1_000_000;
        assert_eq!(
            ProviderRecord::decode_verified(&forged.encode()),
            Err(RecordError::BadSignature)
        );

        // Signed by a different key than the peer it names.
        let other = Keypair::generate_ed25519();
        let stolen = ProviderRecord::sign(info(&key), &other);
        assert_eq!(
            ProviderRecord::decode_verified(&stolen.encode()),
            Err(RecordError::WrongPeer)
        );
        assert_eq!(
            ProviderRecord::decode_verified(&vec![0u8; MAX_RECORD_BYTES + 1]),
            Err(RecordError::TooLarge(MAX_RECORD_BYTES + 1))
        );
    }

    #[test]
    fn only_verified_records_under_their_own_key_are_acceptable() {
        let key = Keypair::generate_ed25519();
        let record = ProviderRecord::sign(info(&key), &key).encode();
        let model = Hash::repeat_byte(3);
        let own = record_key(&model, &key.public().to_peer_id());
        assert!(acceptable(&own, &record));
        assert!(!acceptable(&record_key(&model, &PeerId::random()), &record));
        assert!(!acceptable(&own, b"not a record"));
    }

    #[test]
    fn keys_differ_per_range_model_and_peer() {
        let m = Hash::repeat_byte(1);
        let a = LayerRange { start: 0, end: 10 };
        let b = LayerRange { start: 10, end: 20 };
        assert_ne!(shard_key(&m, a), shard_key(&m, b));
        assert_ne!(shard_key(&m, a), shard_key(&Hash::repeat_byte(2), a));
        assert_ne!(model_key(&m), shard_key(&m, a));
        let p = PeerId::random();
        assert_ne!(record_key(&m, &p), record_key(&m, &PeerId::random()));
    }

    proptest! {
        #[test]
        fn garbage_records_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ProviderRecord::decode_verified(&data);
        }
    }
}
