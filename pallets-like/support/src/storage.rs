//! Typed storage items over the raw key-value state. Keys follow Substrate's layout:
//! `blake2_128(pallet) ++ blake2_128(item)` for a value, plus
//! `blake2_128(encoded key) ++ encoded key` for map entries, so RPC users can compute
//! any key (`state_getStorage`) and map keys can be iterated and decoded.

use crate::overlay::Overlay;
use crate::state::ReadState;
use neuroshard_primitives::blake2_256;
use parity_scale_codec::{Decode, Encode};
use std::marker::PhantomData;
use thiserror::Error;

/// Stored bytes that do not decode: the state is corrupt (never caused by user input).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("storage item {pallet}.{item} holds undecodable bytes")]
pub struct StorageError {
    pub pallet: &'static str,
    pub item: &'static str,
}

fn blake2_128(data: &[u8]) -> [u8; 16] {
    let full = blake2_256(data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full.as_bytes()[..16]);
    out
}

/// The 32-byte prefix of a pallet's storage item.
pub fn item_prefix(pallet: &str, item: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&blake2_128(pallet.as_bytes()));
    key.extend_from_slice(&blake2_128(item.as_bytes()));
    key
}

/// A single value of type `V`.
pub struct StorageValue<V> {
    pallet: &'static str,
    item: &'static str,
    _value: PhantomData<V>,
}

impl<V: Encode + Decode> StorageValue<V> {
    pub const fn new(pallet: &'static str, item: &'static str) -> Self {
        Self {
            pallet,
            item,
            _value: PhantomData,
        }
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
}

/// A map from `K` to `V`.
pub struct StorageMap<K, V> {
    pallet: &'static str,
    item: &'static str,
    _types: PhantomData<(K, V)>,
}

impl<K: Encode + Decode, V: Encode + Decode> StorageMap<K, V> {
    pub const fn new(pallet: &'static str, item: &'static str) -> Self {
        Self {
            pallet,
            item,
            _types: PhantomData,
        }
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

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let value: StorageValue<u64> = StorageValue::new("Test", "Count");
        let state = StateDb::from_pairs([(value.key(), vec![1, 2])]);
        assert!(value.get(&state).is_err());
    }
}
