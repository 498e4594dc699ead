//! Admission control for the node's own generations (HTTP API and `neuroshard_generate`
//! RPC): how many run at once in all, and how many one paying client may run at once.
//! A request beyond either bound is refused at once instead of queueing without bound:
//! every generation holds a session's KV caches on each shard of its route and a
//! blocking thread here, and whoever calls the API spends an escrow. The node's busy
//! answer is HTTP 503 (JSON-RPC error 1021); a client over its own share gets HTTP 429.
//! Both carry `Retry-After`.

use neuroshard_primitives::AccountId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Generations one node runs at once by default (HTTP API and RPC together). They run
/// batched in the shards (see `neuroshard_inference::batcher`), so more at once raise
/// the aggregate speed; half the shards' session bound
/// (`neuroshard_inference::shard::DEFAULT_MAX_SESSIONS`), so the node's own generations
/// never evict each other's caches and peers' sessions keep room.
pub const DEFAULT_MAX_GENERATIONS: usize = 32;

/// Generations one paying client (one API key's account) runs at once by default: a
/// quarter of the node's, so no single key can take every slot.
pub const DEFAULT_MAX_GENERATIONS_PER_CLIENT: usize = DEFAULT_MAX_GENERATIONS / 4;

/// Why a generation was not admitted (the message is for the caller).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Every slot of the node is taken.
    #[error("this node is running its maximum of {0} generations; retry in a moment")]
    Busy(usize),
    /// The client already runs its share.
    #[error("this API key is running its maximum of {0} generations at once; retry when one ends")]
    ClientLimit(usize),
}

/// Generations running per paying client.
type RunningPerClient = Arc<Mutex<HashMap<AccountId, usize>>>;

/// The bounds (see the module docs). Cloning shares the counters.
#[derive(Clone)]
pub struct GenerationAdmission {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
    per_client: usize,
    running: RunningPerClient,
}

/// Held while a generation runs; dropping it frees its slots.
pub struct GenerationPermit {
    _node: tokio::sync::OwnedSemaphorePermit,
    client: Option<(AccountId, RunningPerClient)>,
}

impl Drop for GenerationPermit {
    fn drop(&mut self) {
        if let Some((client, running)) = self.client.take() {
            let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = running.get_mut(&client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    running.remove(&client);
                }
            }
        }
    }
}

impl GenerationAdmission {
    /// At most `max` generations at once in all and `per_client` for one client (each at
    /// least 1; `per_client` at most `max`).
    pub fn new(max: usize, per_client: usize) -> Self {
        let max = max.max(1);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            per_client: per_client.clamp(1, max),
            running: Arc::default(),
        }
    }

    /// A permit for a generation paid by `client` (`None`: the node's own key, bounded
    /// only by the node's total).
    pub fn try_admit(&self, client: Option<&AccountId>) -> Result<GenerationPermit, Refusal> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = client {
            if running.get(client).copied().unwrap_or(0) >= self.per_client {
                return Err(Refusal::ClientLimit(self.per_client));
            }
        }
        let node = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy(self.max))?;
        let client = client.map(|client| {
            *running.entry(client.clone()).or_default() += 1;
            (client.clone(), self.running.clone())
        });
        Ok(GenerationPermit {
            _node: node,
            client,
        })
    }
}

impl Default for GenerationAdmission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_GENERATIONS, DEFAULT_MAX_GENERATIONS_PER_CLIENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(byte: u8) -> AccountId {
        AccountId::from([byte; 32])
    }

    #[test]
    fn admission_refuses_beyond_its_maximum_until_a_permit_returns() {
        let gate = GenerationAdmission::new(2, 2);
        let a = gate.try_admit(None).unwrap();
        let _b = gate.try_admit(None).unwrap();
        assert_eq!(gate.try_admit(None).err(), Some(Refusal::Busy(2)));
        drop(a);
        assert!(gate.try_admit(None).is_ok());
        assert!(
            GenerationAdmission::new(0, 0).try_admit(None).is_ok(),
            "at least one"
        );
    }

    #[test]
    fn one_client_cannot_take_every_slot_and_its_slots_return() {
        let gate = GenerationAdmission::new(4, 2);
        let (alice, bob) = (account(1), account(2));
        let a1 = gate.try_admit(Some(&alice)).unwrap();
        let _a2 = gate.try_admit(Some(&alice)).unwrap();
        assert_eq!(
            gate.try_admit(Some(&alice)).err(),
            Some(Refusal::ClientLimit(2))
        );
        // Others still get in, up to the node's bound.
        let _b1 = gate.try_admit(Some(&bob)).unwrap();
        let _own = gate.try_admit(None).unwrap();
        assert_eq!(gate.try_admit(Some(&bob)).err(), Some(Refusal::Busy(4)));
        // A refusal for the node's bound takes no client slot.
        drop(_own);
        let _b2 = gate.try_admit(Some(&bob)).unwrap();
        assert_eq!(
            gate.try_admit(Some(&bob)).err(),
            Some(Refusal::ClientLimit(2))
        );
        drop(a1);
        let _a3 = gate.try_admit(Some(&alice)).unwrap();
        assert_eq!(gate.try_admit(None).err(), Some(Refusal::Busy(4)));
        assert_eq!(gate.running.lock().unwrap().get(&alice), Some(&2));
    }
}
