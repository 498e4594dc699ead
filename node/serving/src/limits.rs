//! The two quantity limits of generation admission (see [`crate::admission`]), beside
//! its concurrency bounds:
//!
//! - [`TokenRate`]: tokens per minute per paying client (API key). Each client has a
//!   bucket holding up to one minute's tokens, refilled continuously. A generation takes
//!   its prompt tokens plus its `max_tokens` when it is admitted, and gets back what it
//!   did not generate when it ends. A request is admitted while the bucket holds its
//!   cost — or, for a request costing more than a minute's tokens, while the bucket is
//!   full, leaving it in debt — so every request can run and a client's rate stays
//!   bounded. A refused request is told when its cost will be there (`Retry-After`).
//! - [`KvBudget`]: the bytes of KV cache this node's shards hold for its own
//!   generations. A generation reserves what its prompt and `max_tokens` positions take
//!   in the node's shards and frees it when it ends; one that does not fit waits outside
//!   (HTTP 503 with `Retry-After`) rather than growing the caches past the machine's
//!   memory. A generation larger than the whole budget runs only alone.

use neuroshard_primitives::AccountId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Tokens (prompt plus completion) one API key may use per minute by default: about
/// 200 tok/s, most of what a 2-core dev node serves in all (`docs/BENCHMARKS.md`), so
/// one key can use an idle node but not keep others out for long.
pub const DEFAULT_TOKENS_PER_MINUTE_PER_CLIENT: u32 = 12_000;

/// The share of the machine's memory the node's own generations' KV caches may hold by
/// default.
pub const DEFAULT_KV_SHARE_OF_MEMORY: u64 = 4;

/// Bytes of KV cache budget when the machine's memory cannot be read.
pub const FALLBACK_KV_BUDGET: u64 = 2 << 30;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The default KV budget: a quarter of the machine's memory (`MemTotal` of
/// `/proc/meminfo`), or [`FALLBACK_KV_BUDGET`].
pub fn default_kv_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    total.map_or(FALLBACK_KV_BUDGET, |t| t / DEFAULT_KV_SHARE_OF_MEMORY)
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// Tokens per minute per client (see the module docs).
#[derive(Debug)]
pub struct TokenRate {
    per_minute: u32,
    buckets: Mutex<HashMap<AccountId, Bucket>>,
}

impl TokenRate {
    /// At most `per_minute` tokens per minute per client (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    /// Tokens per second.
    fn rate(&self) -> f64 {
        self.capacity() / 60.0
    }

    /// The client's bucket refilled up to `now`.
    fn refilled<'a>(
        &self,
        buckets: &'a mut HashMap<AccountId, Bucket>,
        client: &AccountId,
        now: Instant,
    ) -> &'a mut Bucket {
        let capacity = self.capacity();
        let bucket = buckets.entry(client.clone()).or_insert(Bucket {
            level: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.level = (bucket.level + elapsed * self.rate()).min(capacity);
        bucket.at = bucket.at.max(now);
        bucket
    }

    /// Takes `tokens` from `client`'s bucket at `now`, or says in how many whole seconds
    /// the bucket will hold them.
    pub fn try_take(&self, client: &AccountId, tokens: u64, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut buckets = lock(&self.buckets);
        let bucket = self.refilled(&mut buckets, client, now);
        let need = (tokens as f64).min(self.capacity());
        if bucket.level >= need {
            bucket.level -= tokens as f64;
            return Ok(());
        }
        let wait = (need - bucket.level) / self.rate();
        Err((wait.ceil() as u64).max(1))
    }

    /// Gives `tokens` taken by [`Self::try_take`] back (a generation used fewer).
    pub fn give_back(&self, client: &AccountId, tokens: u64, now: Instant) {
        if self.per_minute == 0 || tokens == 0 {
            return;
        }
        let mut buckets = lock(&self.buckets);
        let bucket = self.refilled(&mut buckets, client, now);
        bucket.level = (bucket.level + tokens as f64).min(self.capacity());
    }
}

/// Bytes of KV cache reserved by running generations (see the module docs).
#[derive(Debug)]
pub struct KvBudget {
    budget: u64,
    used: Mutex<u64>,
}

impl KvBudget {
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            used: Mutex::new(0),
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        *lock(&self.used)
    }

    /// Reserves `bytes` (freed when the reservation drops), or `None` when they do not
    /// fit beside the running generations' reservations.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<KvReservation> {
        let mut used = lock(&self.used);
        if *used > 0 && used.saturating_add(bytes) > self.budget {
            return None;
        }
        *used = used.saturating_add(bytes);
        Some(KvReservation {
            budget: self.clone(),
            bytes,
        })
    }
}

/// A generation's share of the [`KvBudget`], returned on drop.
#[derive(Debug)]
pub struct KvReservation {
    budget: Arc<KvBudget>,
    bytes: u64,
}

impl Drop for KvReservation {
    fn drop(&mut self) {
        let mut used = lock(&self.budget.used);
        *used = used.saturating_sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_and_says_when_a_cost_will_fit() {
        let rate = TokenRate::new(600); // 10 tokens/s, 600 at most
        let (alice, bob) = (AccountId::from([1; 32]), AccountId::from([2; 32]));
        let t0 = Instant::now();
        assert_eq!(rate.try_take(&alice, 500, t0), Ok(()));
        // 100 left: 300 more need 20 s.
        assert_eq!(rate.try_take(&alice, 300, t0), Err(20));
        assert_eq!(
            rate.try_take(&alice, 300, t0 + Duration::from_secs(19)),
            Err(1)
        );
        assert_eq!(
            rate.try_take(&alice, 300, t0 + Duration::from_secs(20)),
            Ok(())
        );
        // Bob has his own bucket.
        assert_eq!(rate.try_take(&bob, 600, t0), Ok(()));
        // What a generation did not use comes back, up to the capacity.
        let t1 = t0 + Duration::from_secs(20);
        rate.give_back(&alice, 250, t1);
        assert_eq!(rate.try_take(&alice, 250, t1), Ok(()));
        assert_eq!(rate.try_take(&alice, 1, t1), Err(1));
        // Full after a minute whatever was taken, never fuller.
        let t2 = t1 + Duration::from_secs(600);
        rate.give_back(&alice, 10_000, t2);
        assert_eq!(rate.try_take(&alice, 600, t2), Ok(()));
        assert_eq!(rate.try_take(&alice, 1, t2), Err(1));
        // No limit.
        assert_eq!(TokenRate::new(0).try_take(&alice, u64::MAX, t0), Ok(()));
    }

    #[test]
    fn a_request_above_a_minutes_tokens_runs_from_a_full_bucket_and_leaves_a_debt() {
        let rate = TokenRate::new(60); // 1 token/s
        let alice = AccountId::from([1; 32]);
        let t0 = Instant::now();
        assert_eq!(rate.try_take(&alice, 150, t0), Ok(()));
        // -90 now: a request of 10 waits until 10 are there, 100 s.
        assert_eq!(rate.try_take(&alice, 10, t0), Err(100));
        // A large one waits for a full bucket: 150 s.
        assert_eq!(rate.try_take(&alice, 1_000, t0), Err(150));
    }

    #[test]
    fn the_kv_budget_admits_what_fits_and_returns_it() {
        let budget = Arc::new(KvBudget::new(100));
        let a = budget.reserve(60).unwrap();
        let b = budget.reserve(40).unwrap();
        assert!(budget.reserve(1).is_none());
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(budget.reserve(61).is_none());
        let _c = budget.reserve(60).unwrap();
        drop(b);
        drop(_c);
        // Larger than the whole budget: only alone.
        let big = budget.reserve(500).unwrap();
        assert!(budget.reserve(1).is_none());
        drop(big);
        assert_eq!(budget.used(), 0);
    }
}
