//! Pending changes on top of a committed state, with nested transactions: an extrinsic
//! runs inside a transaction and, if it fails, everything it wrote (and every event it
//! deposited) is rolled back, so a failed call changes nothing.

use crate::state::{ReadState, StateChanges, StateDb};
use neuroshard_primitives::Event;
use std::collections::BTreeMap;

/// Changes and events layered over a [`StateDb`].
pub struct Overlay<'a> {
    base: &'a StateDb,
    /// Layer 0 holds committed block changes; each open transaction adds a layer.
    layers: Vec<StateChanges>,
    events: Vec<Event>,
    /// Event count at the start of each open transaction.
    event_marks: Vec<usize>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a StateDb) -> Self {
        Self {
            base,
            layers: vec![BTreeMap::new()],
            events: Vec::new(),
            event_marks: Vec::new(),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.top().insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.top().insert(key, None);
    }

    pub fn deposit_event(&mut self, event: Event) {
        self.events.push(event);
    }

    fn top(&mut self) -> &mut StateChanges {
        self.layers.last_mut().expect("layer 0 always exists")
    }

    /// Runs `f` in a transaction: its writes and events are kept on `Ok` and discarded on
    /// `Err`.
    pub fn transactional<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        self.layers.push(BTreeMap::new());
        self.event_marks.push(self.events.len());
        let result = f(self);
        let layer = self.layers.pop().expect("pushed above");
        let mark = self.event_marks.pop().expect("pushed above");
        match result {
            Ok(value) => {
                self.top().extend(layer);
                Ok(value)
            }
            Err(e) => {
                self.events.truncate(mark);
                Err(e)
            }
        }
    }

    /// Ends the overlay, returning the change set and the events.
    pub fn into_parts(mut self) -> (StateChanges, Vec<Event>) {
        debug_assert_eq!(self.layers.len(), 1, "transaction left open");
        let changes = self.layers.swap_remove(0);
        (changes, self.events)
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

impl StateDb {
    /// Runs `f` on an [`Overlay`] over this state and, when it returns `Ok`, applies what
    /// it wrote; returns the events it deposited. On `Err` the state is left as it was.
    /// (The overlay round trip of genesis building and of tests, in one call.)
    pub fn commit<E>(
        &mut self,
        f: impl FnOnce(&mut Overlay<'_>) -> Result<(), E>,
    ) -> Result<Vec<Event>, E> {
        let mut overlay = Overlay::new(self);
        f(&mut overlay)?;
        let (changes, events) = overlay.into_parts();
        self.apply(&changes);
        Ok(events)
    }
}

impl ReadState for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.get(key) {
                return v.clone();
            }
        }
        self.base.get(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .base
            .scan_prefix(prefix)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        for layer in &self.layers {
            for (k, v) in layer.range(prefix.to_vec()..) {
                if !k.starts_with(prefix) {
                    break;
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::{AccountId, Event};

    fn event(n: u128) -> Event {
        Event::FeeBurned {
            who: AccountId::from([0; 32]),
            amount: n,
        }
    }

    #[test]
    fn failed_transaction_changes_nothing() {
        let base = StateDb::from_pairs([(b"k1".to_vec(), b"base".to_vec())]);
        let mut overlay = Overlay::new(&base);
        overlay.put(b"k2".to_vec(), b"kept".to_vec());
        overlay.deposit_event(event(1));
        let result: Result<(), &str> = overlay.transactional(|o| {
            o.put(b"k1".to_vec(), b"changed".to_vec());
            o.remove(b"k2".to_vec());
            o.deposit_event(event(2));
            Err("boom")
        });
        assert!(result.is_err());
        assert_eq!(overlay.get(b"k1"), Some(b"base".to_vec()));
        assert_eq!(overlay.get(b"k2"), Some(b"kept".to_vec()));
        assert_eq!(overlay.events(), &[event(1)]);
    }

    #[test]
    fn nested_commit_and_prefix_scan() {
        let base = StateDb::from_pairs([
            (b"p/a".to_vec(), b"1".to_vec()),
            (b"p/b".to_vec(), b"2".to_vec()),
            (b"q/a".to_vec(), b"3".to_vec()),
        ]);
        let mut overlay = Overlay::new(&base);
        overlay
            .transactional(|o| {
                o.remove(b"p/a".to_vec());
                o.transactional(|o| {
                    o.put(b"p/c".to_vec(), b"4".to_vec());
                    Ok::<_, ()>(())
                })
            })
            .unwrap();
        let scanned = overlay.scan_prefix(b"p/");
        assert_eq!(
            scanned,
            vec![
                (b"p/b".to_vec(), b"2".to_vec()),
                (b"p/c".to_vec(), b"4".to_vec())
            ]
        );
        let (changes, _) = overlay.into_parts();
        let mut after = base.clone();
        after.apply(&changes);
        assert_eq!(after.scan_prefix(b"p/").len(), 2);
    }
}
