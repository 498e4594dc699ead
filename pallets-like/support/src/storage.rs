//! Typed storage items over the raw key-value state, in Substrate's key layout:
//! `twox128(pallet) ++ twox128(item)` for a value, plus `blake2_128(encoded key) ++
//! encoded key` (the `Blake2_128Concat` hasher) for map entries. Any Substrate tool
//! computes the same keys from the metadata each item describes of itself
//! ([`StorageValue::metadata`], [`StorageMap::metadata`]: name, hasher, key and value
//! types, and whether an absent entry reads as `None` or as the type's default), and
//! map keys can be iterated and decoded.

use crate::overlay::Overlay;
use crate::state::ReadState;
use frame_metadata::v14::{
    StorageEntryMetadata, StorageEntryModifier, StorageEntryType, StorageHasher,
};
use parity_scale_codec::{Decode, Encode};
use scale_info::{form::MetaForm, meta_type, TypeInfo};
use sp_crypto_hashing::{blake2_128, twox_128};
use std::marker::PhantomData;
use thiserror::Error;

/// Stored bytes that do not decode: the state is corrupt (never caused by user input).
#[derive(Debug, Error, Clone, PartialEq, Eq, TypeInfo)]
#[error("storage item {pallet}.{item} holds undecodable bytes")]
pub struct StorageError {
    pub pallet: &'static str,
    pub item: &'static str,
}

/// The 32-byte prefix of a pallet's storage item: `twox128(pallet) ++ twox128(item)`.
pub fn item_prefix(pallet: &str, item: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&twox_128(pallet.as_bytes()));
    key.extend_from_slice(&twox_128(item.as_bytes()));
    key
}

/// The encoding of `V::default()`: what an absent item of a default-query item reads as.
fn encoded_default<V: Default + Encode>() -> Vec<u8> {
    V::default().encode()
}

/// The metadata modifier and default bytes of an item: absent entries read as `None`
/// (Substrate's `OptionQuery`, default `0x00`) unless a default is declared.
fn modifier(default: Option<fn() -> Vec<u8>>) -> (StorageEntryModifier, Vec<u8>) {
    match default {
        Some(encode) => (StorageEntryModifier::Default, encode()),
        None => (StorageEntryModifier::Optional, vec![0]),
    }
}

/// A single value of type `V`.
pub struct StorageValue<V> {
    pallet: &'static str,
    item: &'static str,
    default: Option<fn() -> Vec<u8>>,
    _value: PhantomData<V>,
}

impl<V: Encode + Decode> StorageValue<V> {
    pub const fn new(pallet: &'static str, item: &'static str) -> Self {
        Self {
            pallet,
            item,
            default: None,
            _value: PhantomData,
        }
    }

    /// Declares that an absent value reads as `V::default()` (Substrate's `ValueQuery`),
    /// as the callers of this item already treat it.
    pub const fn value_query(mut self) -> Self
    where
        V: Default,
    {
        self.default = Some(encoded_default::<V>);
        self
    }

    pub fn key(&self) -> Vec<u8> {
        item_prefix(self.pallet, self.item)
    }

    pub fn get(&self, state: &impl ReadState) -> Result<Option<V>, StorageError> {
        decode_opt(state.get(&self.key()), self.pallet, self.item)
    }

    pub fn put(&self, overlay: &mut Overlay<'_>, value: &V) {
        overlay.put(self.key(), value.encode());
    }

    pub fn kill(&self, overlay: &mut Overlay<'_>) {
        overlay.remove(self.key());
    }
}

impl<V: Encode + Decode + TypeInfo + 'static> StorageValue<V> {
    /// This item's entry in its pallet's metadata.
    pub fn metadata(&self, docs: &'static str) -> StorageEntryMetadata<MetaForm> {
        let (modifier, default) = modifier(self.default);
        StorageEntryMetadata {
            name: self.item,
            modifier,
            ty: StorageEntryType::Plain(meta_type::<V>()),
            default,
            docs: vec![docs],
        }
    }
}

/// A map from `K` to `V`, keyed with the `Blake2_128Concat` hasher.
pub struct StorageMap<K, V> {
    pallet: &'static str,
    item: &'static str,
    default: Option<fn() -> Vec<u8>>,
    _types: PhantomData<(K, V)>,
}

impl<K: Encode + Decode, V: Encode + Decode> StorageMap<K, V> {
    pub const fn new(pallet: &'static str, item: &'static str) -> Self {
        Self {
            pallet,
            item,
            default: None,
            _types: PhantomData,
        }
    }

    /// Declares that an absent entry reads as `V::default()` (Substrate's `ValueQuery`).
    pub const fn value_query(mut self) -> Self
    where
        V: Default,
    {
        self.default = Some(encoded_default::<V>);
        self
    }

    pub fn prefix(&self) -> Vec<u8> {
        item_prefix(self.pallet, self.item)
    }

    pub fn key(&self, key: &K) -> Vec<u8> {
        let encoded = key.encode();
        let mut full = self.prefix();
        full.extend_from_slice(&blake2_128(&encoded));
        full.extend_from_slice(&encoded);
        full
    }

    pub fn get(&self, state: &impl ReadState, key: &K) -> Result<Option<V>, StorageError> {
        decode_opt(state.get(&self.key(key)), self.pallet, self.item)
    }

    pub fn contains(&self, state: &impl ReadState, key: &K) -> bool {
        state.get(&self.key(key)).is_some()
    }

    pub fn insert(&self, overlay: &mut Overlay<'_>, key: &K, value: &V) {
        overlay.put(self.key(key), value.encode());
    }

    pub fn remove(&self, overlay: &mut Overlay<'_>, key: &K) {
        overlay.remove(self.key(key));
    }

    /// Every entry, in storage-key order (deterministic).
    pub fn entries(&self, state: &impl ReadState) -> Result<Vec<(K, V)>, StorageError> {
        let prefix = self.prefix();
        let err = || StorageError {
            pallet: self.pallet,
            item: self.item,
        };
        state
            .scan_prefix(&prefix)
            .into_iter()
            .map(|(k, v)| {
                let mut key_bytes = k.get(prefix.len() + 16..).ok_or_else(err)?;
                let key = K::decode(&mut key_bytes).map_err(|_| err())?;
                let value = V::decode(&mut v.as_slice()).map_err(|_| err())?;
                Ok((key, value))
            })
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self, overlay: &mut Overlay<'_>) {
        for (key, _) in overlay.scan_prefix(&self.prefix()) {
            overlay.remove(key);
        }
    }
}

impl<K, V> StorageMap<K, V>
where
    K: Encode + Decode + TypeInfo + 'static,
    V: Encode + Decode + TypeInfo + 'static,
{
    /// This item's entry in its pallet's metadata.
    pub fn metadata(&self, docs: &'static str) -> StorageEntryMetadata<MetaForm> {
        let (modifier, default) = modifier(self.default);
        StorageEntryMetadata {
            name: self.item,
            modifier,
            ty: StorageEntryType::Map {
                hashers: vec![StorageHasher::Blake2_128Concat],
                key: meta_type::<K>(),
                value: meta_type::<V>(),
            },
            default,
            docs: vec![docs],
        }
    }
}

fn decode_opt<V: Decode>(
    bytes: Option<Vec<u8>>,
    pallet: &'static str,
    item: &'static str,
) -> Result<Option<V>, StorageError> {
    bytes
        .map(|b| V::decode(&mut b.as_slice()).map_err(|_| StorageError { pallet, item }))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDb;

    #[test]
    fn typed_map_round_trip_and_iteration() {
        let map: StorageMap<u32, String> = StorageMap::new("Test", "Names");
        let other: StorageValue<u64> = StorageValue::new("Test", "Count");
        let base = StateDb::new();
        let mut overlay = Overlay::new(&base);
        map.insert(&mut overlay, &7, &"seven".into());
        map.insert(&mut overlay, &3, &"three".into());
        other.put(&mut overlay, &42);
        assert_eq!(map.get(&overlay, &7).unwrap(), Some("seven".to_string()));
        assert_eq!(other.get(&overlay).unwrap(), Some(42));
        let mut entries = map.entries(&overlay).unwrap();
        entries.sort();
        assert_eq!(entries, vec![(3, "three".into()), (7, "seven".into())]);
        map.clear(&mut overlay);
        assert!(map.entries(&overlay).unwrap().is_empty());
        assert_eq!(other.get(&overlay).unwrap(), Some(42));
    }

    /// The keys of Substrate's own items, as every Substrate tool computes them.
    #[test]
    fn keys_follow_substrates_layout() {
        let number: StorageValue<u32> = StorageValue::new("System", "Number");
        assert_eq!(
            hex::encode(number.key()),
            "26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"
        );
        let account: StorageMap<[u8; 32], u32> = StorageMap::new("System", "Account");
        let key = account.key(&[0u8; 32]);
        assert_eq!(
            hex::encode(&key[..32]),
            "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9"
        );
        assert_eq!(&key[32..48], &blake2_128(&[0u8; 32]));
        assert_eq!(&key[48..], &[0u8; 32]);
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let value: StorageValue<u64> = StorageValue::new("Test", "Count");
        let state = StateDb::from_pairs([(value.key(), vec![1, 2])]);
        assert!(value.get(&state).is_err());
    }
}
