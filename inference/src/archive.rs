//! The spot-check material a shard keeps for the work it recorded, so that it can answer
//! the chain's spot checks after the session is gone.
//!
//! Two classes, with separate byte budgets, so that nobody can flush material the chain
//! still needs by opening sessions:
//! - **unconfirmed**: every record starts here, newest kept first-in-first-out. Sessions
//!   nobody pays for never leave this class, so however many of them a peer opens they
//!   only push each other (and other not-yet-included work) out.
//! - **pinned**: material of receipts that reached the chain, which the node pins (see
//!   [`MaterialArchive::pin`]) with the paying client as `owner` and releases when the
//!   chain no longer needs it (settled, or its check decided). Nothing is ever evicted
//!   from this class; a pin beyond the class budget, or beyond one owner's share of it,
//!   is refused (the material stays unconfirmed), so one paying client cannot crowd out
//!   another's receipts either.
//!
//! The archive knows nothing of the chain: an owner is 32 opaque bytes.

use crate::spot_check::SpotCheckMaterial;
use neuroshard_primitives::Hash;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Default bytes of unconfirmed material a shard keeps.
pub const DEFAULT_UNCONFIRMED_BYTES: usize = 64 << 20;
/// Default bytes of pinned material a shard keeps.
pub const DEFAULT_PINNED_BYTES: usize = 128 << 20;

/// The archive's byte budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveBudget {
    /// Unconfirmed material, oldest dropped beyond it.
    pub unconfirmed: usize,
    /// Pinned material in total.
    pub pinned: usize,
    /// Pinned material of any one owner.
    pub per_owner: usize,
}

impl Default for ArchiveBudget {
    fn default() -> Self {
        Self::with_pinned(DEFAULT_UNCONFIRMED_BYTES, DEFAULT_PINNED_BYTES)
    }
}

impl ArchiveBudget {
    /// `unconfirmed` and `pinned` bytes, one owner pinning at most half of `pinned`.
    pub fn with_pinned(unconfirmed: usize, pinned: usize) -> Self {
        Self {
            unconfirmed,
            pinned,
            per_owner: pinned / 2,
        }
    }
}

/// What [`MaterialArchive::pin`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinOutcome {
    /// Now kept until released.
    Pinned,
    /// Was pinned already.
    AlreadyPinned,
    /// No material under that id (never recorded here, or already dropped).
    Missing,
    /// Refused: the owner's share, or the pinned budget, is full.
    OverBudget,
}

#[derive(Debug)]
struct Pinned {
    owner: [u8; 32],
    material: SpotCheckMaterial,
}

/// See the module docs.
#[derive(Debug)]
pub struct MaterialArchive {
    budget: ArchiveBudget,
    unconfirmed: VecDeque<(Hash, SpotCheckMaterial)>,
    unconfirmed_bytes: usize,
    pinned: BTreeMap<Hash, Pinned>,
    pinned_bytes: usize,
    owner_bytes: HashMap<[u8; 32], usize>,
}

fn size(m: &SpotCheckMaterial) -> usize {
    m.inputs.byte_len() + m.commitment.len()
}

impl MaterialArchive {
    pub fn new(budget: ArchiveBudget) -> Self {
        Self {
            budget,
            unconfirmed: VecDeque::new(),
            unconfirmed_bytes: 0,
            pinned: BTreeMap::new(),
            pinned_bytes: 0,
            owner_bytes: HashMap::new(),
        }
    }

    /// Keeps `material` for the work record `id` as unconfirmed, dropping the oldest
    /// unconfirmed material beyond the budget (never the newest).
    pub fn insert(&mut self, id: Hash, material: SpotCheckMaterial) {
        self.unconfirmed_bytes += size(&material);
        self.unconfirmed.push_back((id, material));
        while self.unconfirmed_bytes > self.budget.unconfirmed && self.unconfirmed.len() > 1 {
            if let Some((_, old)) = self.unconfirmed.pop_front() {
                self.unconfirmed_bytes -= size(&old);
            }
        }
    }

    /// Keeps the material of `id` until [`Self::release`]d, charged to `owner`.
    pub fn pin(&mut self, id: &Hash, owner: [u8; 32]) -> PinOutcome {
        if self.pinned.contains_key(id) {
            return PinOutcome::AlreadyPinned;
        }
        let Some(at) = self.unconfirmed.iter().rposition(|(i, _)| i == id) else {
            return PinOutcome::Missing;
        };
        let bytes = size(&self.unconfirmed[at].1);
        let owned = self.owner_bytes.get(&owner).copied().unwrap_or(0);
        if self.pinned_bytes + bytes > self.budget.pinned || owned + bytes > self.budget.per_owner {
            return PinOutcome::OverBudget;
        }
        let Some((_, material)) = self.unconfirmed.remove(at) else {
            return PinOutcome::Missing;
        };
        self.unconfirmed_bytes -= bytes;
        self.pinned_bytes += bytes;
        *self.owner_bytes.entry(owner).or_default() += bytes;
        self.pinned.insert(*id, Pinned { owner, material });
        PinOutcome::Pinned
    }

    /// Drops pinned material the chain no longer needs.
    pub fn release(&mut self, id: &Hash) {
        let Some(p) = self.pinned.remove(id) else {
            return;
        };
        let bytes = size(&p.material);
        self.pinned_bytes -= bytes;
        if let Some(owned) = self.owner_bytes.get_mut(&p.owner) {
            *owned -= bytes;
            if *owned == 0 {
                self.owner_bytes.remove(&p.owner);
            }
        }
    }

    /// The ids of the pinned material.
    pub fn pinned(&self) -> Vec<Hash> {
        self.pinned.keys().copied().collect()
    }

    pub fn get(&self, id: &Hash) -> Option<SpotCheckMaterial> {
        if let Some(p) = self.pinned.get(id) {
            return Some(p.material.clone());
        }
        self.unconfirmed
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, m)| m.clone())
    }

    /// Entries kept, both classes.
    pub fn len(&self) -> usize {
        self.unconfirmed.len() + self.pinned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spot_check::InputLog;

    fn m(n: usize) -> SpotCheckMaterial {
        SpotCheckMaterial {
            inputs: InputLog::Tokens(vec![0; n]),
            commitment: vec![],
        }
    }

    fn id(i: u8) -> Hash {
        Hash::repeat_byte(i)
    }

    #[test]
    fn unconfirmed_material_keeps_the_newest_within_budget() {
        let mut a = MaterialArchive::new(ArchiveBudget::with_pinned(100, 100));
        for i in 1..=3 {
            a.insert(id(i), m(10));
        }
        assert_eq!(a.len(), 2);
        assert!(a.get(&id(1)).is_none());
        assert!(a.get(&id(3)).is_some());
    }

    /// The attack: unpaid sessions flood the archive. Pinned material survives it.
    #[test]
    fn flooding_never_evicts_pinned_material() {
        let mut a = MaterialArchive::new(ArchiveBudget::with_pinned(100, 200));
        a.insert(id(1), m(10));
        assert_eq!(a.pin(&id(1), [1; 32]), PinOutcome::Pinned);
        assert_eq!(a.pin(&id(1), [1; 32]), PinOutcome::AlreadyPinned);
        for i in 10..200 {
            a.insert(id(i), m(10));
        }
        assert_eq!(a.get(&id(1)), Some(m(10)));
        assert!(a.get(&id(10)).is_none(), "the flood only pushed itself out");
        a.release(&id(1));
        assert!(a.get(&id(1)).is_none());
        assert_eq!(a.pin(&id(1), [1; 32]), PinOutcome::Missing);
    }

    #[test]
    fn one_owner_pins_at_most_its_share() {
        // 200 pinned bytes, 100 per owner; each entry is 40 bytes.
        let mut a = MaterialArchive::new(ArchiveBudget::with_pinned(1_000, 200));
        for i in 1..=6 {
            a.insert(id(i), m(10));
        }
        assert_eq!(a.pin(&id(1), [7; 32]), PinOutcome::Pinned);
        assert_eq!(a.pin(&id(2), [7; 32]), PinOutcome::Pinned);
        assert_eq!(a.pin(&id(3), [7; 32]), PinOutcome::OverBudget);
        // Another owner still has room; the refused entry stays unconfirmed.
        assert_eq!(a.pin(&id(4), [8; 32]), PinOutcome::Pinned);
        assert!(a.get(&id(3)).is_some());
        // Releasing frees the owner's share.
        a.release(&id(1));
        assert_eq!(a.pin(&id(3), [7; 32]), PinOutcome::Pinned);
        assert_eq!(a.pinned(), vec![id(2), id(3), id(4)]);
    }
}
