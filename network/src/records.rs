//! Shard provider records in the Kademlia DHT. A node serving layer ranges of a model
//! (1) announces itself as a Kademlia *provider* of the model key and of one key per layer
//! range it serves (key = blake2(model hash ++ start ++ end)), and (2) stores one signed
//! [`ProviderRecord`] under its per-peer record key saying which account it works for,
//! which ranges it serves, where it can be reached, how busy it is and how fast it has
//! been. Anyone can store anything in a DHT, so a record is only believed when the
//! account <-> peer binding holds both ways:
//! - the libp2p key whose peer id the record names signs the whole record (account
//!   included): the peer says which account it works for;
//! - the account's sr25519 key signs (domain, peer id, model) ([`AccountBinding`]): the
//!   account says the peer works for it.
//!
//! Without the second half any peer could announce records in a victim's name, answer
//! the verifiers' requests for the victim's spot-check material with nothing, and have
//! the victim slashed (the framing attack of `tests/tests/attacks.rs`).
//!
//! This is version 2 of the record (a new signing context and record key domain, so
//! version-1 records are neither stored nor believed); it also carries the provider's
//! addresses, which a provider behind NAT fills with its relayed ones.

use blake2::digest::{consts::U32, Digest};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};
use neuroshard_primitives::{
    crypto, AccountId, Hash, Keypair as AccountKeypair, LayerRange, Signature,
};
use parity_scale_codec::{Decode, DecodeAll, Encode};

type Blake2b256 = blake2::Blake2b<U32>;

/// Largest encoded record we accept.
pub const MAX_RECORD_BYTES: usize = 4096;
/// Most layer ranges one provider may announce.
pub const MAX_SHARDS_PER_RECORD: usize = 64;
/// Most addresses one provider may announce.
pub const MAX_ADDRESSES_PER_RECORD: usize = 8;
/// Longest announced address, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 128;

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
    key_of(&[b"neuroshard/provider/2", model.as_bytes(), &peer.to_bytes()])
}

/// The account's half of the account <-> peer binding: its sr25519 signature over
/// (domain, peer id, model), saying "this peer serves `model` for me". Made once when a
/// node starts; a copy is useless to any other peer, since it names the peer id.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AccountBinding {
    /// The chain account that signs the provider's receipts (32 bytes).
    pub account: [u8; 32],
    pub signature: Signature,
}

const BINDING_CONTEXT: &[u8] = b"neuroshard/peer-binding/1";

fn binding_payload(peer: &[u8], model: &Hash) -> Vec<u8> {
    (BINDING_CONTEXT, peer, model).encode()
}

impl AccountBinding {
    /// `key`'s account binds `peer` to itself for `model`.
    pub fn sign(key: &AccountKeypair, peer: &PeerId, model: &Hash) -> Self {
        Self {
            account: crypto::account_of(key).into(),
            signature: crypto::sign(key, &binding_payload(&peer.to_bytes(), model)),
        }
    }

    /// True when the account signed this binding of `peer` (bytes) for `model`.
    pub fn verify(&self, peer: &[u8], model: &Hash) -> bool {
        crypto::verify(
            &self.signature,
            &binding_payload(peer, model),
            &AccountId::from(self.account),
        )
    }

    pub fn account(&self) -> AccountId {
        AccountId::from(self.account)
    }
}

/// What a provider says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProviderInfo {
    /// The provider's libp2p peer id bytes.
    pub peer: Vec<u8>,
    /// The chain account that signs its receipts, and its signature binding `peer` to
    /// it for `model`.
    pub binding: AccountBinding,
    pub model: Hash,
    pub shards: Vec<LayerRange>,
    /// Sessions it is serving now.
    pub active_sessions: u32,
    /// Recent serving throughput in milli-tokens per second (0: not measured yet).
    pub throughput_milli: u64,
    /// Unix milliseconds when it was issued; stale records are ignored.
    pub issued_at_ms: u64,
    /// Multiaddrs (bytes) the provider can be reached at, relayed ones included.
    pub addresses: Vec<Vec<u8>>,
}

impl ProviderInfo {
    /// A record body for `peer` bound by `key`'s account, serving `shards` of `model`,
    /// with no load figures yet, issued at `issued_at_ms` (the network service fills
    /// the addresses when it announces it).
    pub fn bound(
        peer: &PeerId,
        key: &AccountKeypair,
        model: Hash,
        shards: Vec<LayerRange>,
        issued_at_ms: u64,
    ) -> Self {
        Self {
            peer: peer.to_bytes(),
            binding: AccountBinding::sign(key, peer, &model),
            model,
            shards,
            active_sessions: 0,
            throughput_milli: 0,
            issued_at_ms,
            addresses: Vec::new(),
        }
    }

    /// The account the provider works for (valid after [`ProviderRecord::decode_verified`]).
    pub fn account(&self) -> AccountId {
        self.binding.account()
    }
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
    #[error("record announces {0} addresses, more than {MAX_ADDRESSES_PER_RECORD}, or one longer than {MAX_ADDRESS_BYTES} bytes")]
    TooManyAddresses(usize),
    #[error("the account the record names did not bind its peer (no valid account signature)")]
    UnboundAccount,
}

const SIGNING_CONTEXT: &[u8] = b"neuroshard/provider-record/2";

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

    /// Decodes and verifies a record from the DHT: sizes first, then the peer's
    /// signature, then the account's binding (the costliest check last).
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let record = Self::decode_all(&mut &bytes[..]).map_err(|_| RecordError::Malformed)?;
        let info = &record.info;
        if info.shards.len() > MAX_SHARDS_PER_RECORD {
            return Err(RecordError::TooManyShards(info.shards.len()));
        }
        if info.addresses.len() > MAX_ADDRESSES_PER_RECORD
            || info.addresses.iter().any(|a| a.len() > MAX_ADDRESS_BYTES)
        {
            return Err(RecordError::TooManyAddresses(info.addresses.len()));
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
        if !record
            .info
            .binding
            .verify(&record.info.peer, &record.info.model)
        {
            return Err(RecordError::UnboundAccount);
        }
        Ok(record)
    }

    /// The provider's peer id (valid after [`Self::decode_verified`]).
    pub fn peer_id(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.info.peer).ok()
    }

    /// The addresses the provider announced that parse as multiaddrs.
    pub fn addresses(&self) -> Vec<Multiaddr> {
        self.info
            .addresses
            .iter()
            .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
            .collect()
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

    fn account_key(seed: u8) -> AccountKeypair {
        crypto::keypair_from_uri(&format!("//Account{seed}")).unwrap()
    }

    fn info(key: &Keypair) -> ProviderInfo {
        let peer = key.public().to_peer_id();
        let model = Hash::repeat_byte(3);
        ProviderInfo {
            peer: peer.to_bytes(),
            binding: AccountBinding::sign(&account_key(7), &peer, &model),
            model,
            shards: vec![LayerRange { start: 0, end: 10 }],
            active_sessions: 2,
            throughput_milli: 30_000,
            issued_at_ms: 1,
            addresses: vec!["/ip4/198.18.0.1/tcp/30333"
                .parse::<Multiaddr>()
                .unwrap()
                .to_vec()],
        }
    }

    #[test]
    fn the_account_must_bind_the_peer() {
        let key = Keypair::generate_ed25519();
        let honest = ProviderRecord::sign(info(&key), &key);
        assert_eq!(honest.info.account(), crypto::account_of(&account_key(7)));
        assert_eq!(honest.addresses().len(), 1);

        // A peer naming a victim's account, with a binding its own account signed.
        let mallory = Keypair::generate_ed25519();
        let mut claim = info(&mallory);
        let own = AccountBinding::sign(
            &account_key(9),
            &mallory.public().to_peer_id(),
            &claim.model,
        );
        claim.binding = AccountBinding {
            account: honest.info.binding.account,
            signature: own.signature,
        };
        assert_eq!(
            ProviderRecord::decode_verified(
                &ProviderRecord::sign(claim.clone(), &mallory).encode()
            ),
            Err(RecordError::UnboundAccount)
        );
        // The victim's real binding copied: it names the victim's peer, not Mallory's.
        claim.binding = honest.info.binding.clone();
        assert_eq!(
            ProviderRecord::decode_verified(
                &ProviderRecord::sign(claim.clone(), &mallory).encode()
            ),
            Err(RecordError::UnboundAccount)
        );
        // Nor does a binding for another model carry over.
        let mut other_model = info(&key);
        other_model.model = Hash::repeat_byte(4);
        assert_eq!(
            ProviderRecord::decode_verified(&ProviderRecord::sign(other_model, &key).encode()),
            Err(RecordError::UnboundAccount)
        );
        // Too many addresses.
        let mut crowded = info(&key);
        crowded.addresses = vec![vec![0; 4]; MAX_ADDRESSES_PER_RECORD + 1];
        assert_eq!(
            ProviderRecord::decode_verified(&ProviderRecord::sign(crowded, &key).encode()),
            Err(RecordError::TooManyAddresses(MAX_ADDRESSES_PER_RECORD + 1))
        );
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
