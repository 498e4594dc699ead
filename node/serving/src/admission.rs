//! Admission control for the node's own generations (HTTP API and `neuroshard_generate`
//! RPC): how many run at once in all, and how many one paying client may run at once.
//! A request beyond either bound is refused at once instead of queueing without bound:
//! every generation holds a session's KV caches on each shard of its route and a
//! blocking thread here, and whoever calls the API spends an escrow. The node's busy
//! answer is HTTP 503 (JSON-RPC error 1021); a client over its own share gets HTTP 429.
//! Both carry `Retry-After`. Beside the concurrency bounds, a client's tokens per minute
//! and the KV memory of all running generations are bounded (see [`crate::limits`]): a
//! client over its rate gets HTTP 429 with `Retry-After` computed from its bucket, and a
//! generation whose KV cache does not fit gets HTTP 503 with `Retry-After`.

use crate::limits::{KvBudget, KvReservation, TokenRate};
use neuroshard_primitives::AccountId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// The client used its tokens per minute.
    #[error("this API key used its {limit} tokens per minute; this request's {tokens} tokens (prompt plus max_tokens) are there again in {retry_after} s")]
    TokenRate {
        limit: u32,
        tokens: u64,
        retry_after: u64,
    },
    /// The running generations' KV caches fill the node's budget.
    #[error("this node's KV cache budget ({budget} bytes) is taken by running generations; retry in a moment")]
    Memory { budget: u64 },
}

impl Refusal {
    /// Seconds the client should wait before trying again.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refusal::TokenRate { retry_after, .. } => *retry_after,
            _ => 1,
        }
    }

    /// Whether the client is over its own share (HTTP 429) rather than the node being
    /// full (HTTP 503).
    pub fn is_client_limit(&self) -> bool {
        matches!(self, Refusal::ClientLimit(_) | Refusal::TokenRate { .. })
    }
}

/// What a generation will take: tokens (prompt plus `max_tokens`, against its client's
/// rate) and bytes of KV cache in this node's shards.
#[derive(Clone, Copy, Debug, Default)]
pub struct Demand {
    pub tokens: u64,
    pub kv_bytes: u64,
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
    tokens: Arc<TokenRate>,
    kv: Arc<KvBudget>,
}

/// Held while a generation runs; dropping it frees its slots and KV reservation.
pub struct GenerationPermit {
    _node: tokio::sync::OwnedSemaphorePermit,
    _kv: KvReservation,
    client: Option<(AccountId, RunningPerClient)>,
    /// The client's rate and the tokens taken from it.
    charged: Option<(Arc<TokenRate>, u64)>,
}

impl GenerationPermit {
    /// The generation used `tokens` in all: what it took beyond that goes back to its
    /// client's rate.
    pub fn settle(&mut self, tokens: u64) {
        if let (Some((client, _)), Some((rate, taken))) = (&self.client, self.charged.take()) {
            rate.give_back(client, taken.saturating_sub(tokens), Instant::now());
        }
    }
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
            tokens: Arc::new(TokenRate::new(0)),
            kv: Arc::new(KvBudget::new(u64::MAX)),
        }
    }

    /// The same bounds plus at most `per_minute` tokens per minute per client (0: no
    /// limit) and `kv_bytes` of KV cache for all running generations.
    pub fn with_limits(mut self, per_minute: u32, kv_bytes: u64) -> Self {
        self.tokens = Arc::new(TokenRate::new(per_minute));
        self.kv = Arc::new(KvBudget::new(kv_bytes));
        self
    }

    /// The KV budget and the bytes reserved now.
    pub fn kv_figures(&self) -> (u64, u64) {
        (self.kv.budget(), self.kv.used())
    }

    /// A permit for a generation paid by `client` (`None`: the node's own key, bounded
    /// only by the node's total and KV budget) that takes `demand`.
    pub fn try_admit(
        &self,
        client: Option<&AccountId>,
        demand: Demand,
    ) -> Result<GenerationPermit, Refusal> {
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
        let kv = self.kv.reserve(demand.kv_bytes).ok_or(Refusal::Memory {
            budget: self.kv.budget(),
        })?;
        let charged = match client {
            Some(client) => {
                let now = Instant::now();
                self.tokens
                    .try_take(client, demand.tokens, now)
                    .map_err(|retry_after| Refusal::TokenRate {
                        limit: self.tokens.per_minute(),
                        tokens: demand.tokens,
                        retry_after,
                    })?;
                Some((self.tokens.clone(), demand.tokens))
            }
            None => None,
        };
        let client = client.map(|client| {
            *running.entry(client.clone()).or_default() += 1;
            (client.clone(), self.running.clone())
        });
        Ok(GenerationPermit {
            _node: node,
            _kv: kv,
            client,
            charged,
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
        let a = gate.try_admit(None, Demand::default()).unwrap();
        let _b = gate.try_admit(None, Demand::default()).unwrap();
        assert_eq!(
            gate.try_admit(None, Demand::default()).err(),
            Some(Refusal::Busy(2))
        );
        drop(a);
        assert!(gate.try_admit(None, Demand::default()).is_ok());
        assert!(
            GenerationAdmission::new(0, 0)
                .try_admit(None, Demand::default())
                .is_ok(),
            "at least one"
        );
    }

    #[test]
    fn one_client_cannot_take_every_slot_and_its_slots_return() {
        let gate = GenerationAdmission::new(4, 2);
        let (alice, bob) = (account(1), account(2));
        let a1 = gate.try_admit(Some(&alice), Demand::default()).unwrap();
        let _a2 = gate.try_admit(Some(&alice), Demand::default()).unwrap();
        assert_eq!(
            gate.try_admit(Some(&alice), Demand::default()).err(),
            Some(Refusal::ClientLimit(2))
        );
        // Others still get in, up to the node's bound.
        let _b1 = gate.try_admit(Some(&bob), Demand::default()).unwrap();
        let _own = gate.try_admit(None, Demand::default()).unwrap();
        assert_eq!(
            gate.try_admit(Some(&bob), Demand::default()).err(),
            Some(Refusal::Busy(4))
        );
        // A refusal for the node's bound takes no client slot.
        drop(_own);
        let _b2 = gate.try_admit(Some(&bob), Demand::default()).unwrap();
        assert_eq!(
            gate.try_admit(Some(&bob), Demand::default()).err(),
            Some(Refusal::ClientLimit(2))
        );
        drop(a1);
        let _a3 = gate.try_admit(Some(&alice), Demand::default()).unwrap();
        assert_eq!(
            gate.try_admit(None, Demand::default()).err(),
            Some(Refusal::Busy(4))
        );
        assert_eq!(gate.running.lock().unwrap().get(&alice), Some(&2));
    }

    #[test]
    fn token_rate_and_kv_refusals_take_nothing_and_settling_gives_back() {
        let gate = GenerationAdmission::new(8, 8).with_limits(600, 1_000);
        let alice = account(1);
        let demand = |tokens, kv_bytes| Demand { tokens, kv_bytes };
        let mut a = gate.try_admit(Some(&alice), demand(500, 600)).unwrap();
        assert_eq!(
            gate.try_admit(None, demand(0, 500)).err(),
            Some(Refusal::Memory { budget: 1_000 })
        );
        let refused = gate
            .try_admit(Some(&alice), demand(300, 100))
            .err()
            .unwrap();
        assert!(
            matches!(refused, Refusal::TokenRate { limit: 600, tokens: 300, retry_after } if (19..=20).contains(&retry_after)),
            "{refused:?}"
        );
        assert!(refused.is_client_limit());
        // Neither refusal kept a slot or KV bytes.
        assert_eq!(gate.kv_figures(), (1_000, 600));
        assert_eq!(gate.running.lock().unwrap().get(&alice), Some(&1));
        // The generation used 100 of its 500 tokens: 400 come back.
        a.settle(100);
        drop(a);
        assert_eq!(gate.kv_figures(), (1_000, 0));
        assert!(gate.try_admit(Some(&alice), demand(450, 100)).is_ok());
    }
}
