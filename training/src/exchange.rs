//! Sharing pseudo-gradients among the holders of one shard. A [`GradientExchange`]
//! carries each holder's [`Contribution`] (its signed gradient receipt plus the encoded
//! pseudo-gradient) to every other holder of the same (model, shard, round). The
//! in-process implementation here serves tests, benches and single-process nodes; the
//! network implementation (libp2p request-response/gossip) lives in the node crate.
//!
//! The exchange moves bytes only. What arrives is hostile: the receiving trainer checks
//! signatures, hashes, sizes and values before using any of it (see `trainer`).

use crate::error::{Result, TrainingError};
use neuroshard_primitives::{GradientReceipt, Hash, LayerRange};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which round of which shard a contribution belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoundKey {
    pub model: Hash,
    pub layers: LayerRange,
    pub round: u32,
}

/// One holder's share of a round: its gradient receipt and the encoded pseudo-gradient
/// the receipt's `pseudo_gradient` hash names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub receipt: GradientReceipt,
    pub payload: Vec<u8>,
}

/// Carries contributions between the holders of a shard.
pub trait GradientExchange: Send + Sync {
    /// Makes `contribution` available to every holder of the round's shard.
    fn publish(&self, key: RoundKey, contribution: Contribution) -> Result<()>;

    /// The contributions known for `key` once `expected` of them have arrived, or
    /// whatever arrived when `timeout` passes (blocking; training runs on its own
    /// thread).
    fn collect(
        &self,
        key: RoundKey,
        expected: usize,
        timeout: Duration,
    ) -> Result<Vec<Contribution>>;
}

/// An exchange inside one process: a shared board per round.
#[derive(Debug, Default)]
pub struct InProcessExchange {
    rounds: Mutex<HashMap<RoundKey, Vec<Contribution>>>,
    arrived: Condvar,
    max_payload: usize,
    bytes_published: AtomicU64,
}

impl InProcessExchange {
    /// An exchange refusing payloads over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload,
            ..Default::default()
        }
    }

    /// Total payload bytes published so far (each holder uploads its payload once; every
    /// other holder downloads it).
    pub fn bytes_published(&self) -> u64 {
        self.bytes_published.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoundKey, Vec<Contribution>>> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the contributions of rounds before `round` of a shard.
    pub fn prune(&self, model: Hash, layers: LayerRange, round: u32) {
        self.lock()
            .retain(|k, _| !(k.model == model && k.layers == layers && k.round < round));
    }
}

impl GradientExchange for InProcessExchange {
    fn publish(&self, key: RoundKey, contribution: Contribution) -> Result<()> {
        if contribution.payload.len() > self.max_payload {
            return Err(TrainingError::Exchange(format!(
                "payload of {} bytes exceeds the cap of {}",
                contribution.payload.len(),
                self.max_payload
            )));
        }
        let mut rounds = self.lock();
        let board = rounds.entry(key).or_default();
        // A worker's first contribution stands; the trainer treats a worker that sent
        // two different ones as equivocating, so keep both for it to see.
        if !board.contains(&contribution) {
            self.bytes_published
                .fetch_add(contribution.payload.len() as u64, Ordering::Relaxed);
            board.push(contribution);
        }
        self.arrived.notify_all();
        Ok(())
    }

    fn collect(
        &self,
        key: RoundKey,
        expected: usize,
        timeout: Duration,
    ) -> Result<Vec<Contribution>> {
        let deadline = Instant::now() + timeout;
        let mut rounds = self.lock();
        loop {
            let have = rounds.get(&key).map(Vec::len).unwrap_or(0);
            let now = Instant::now();
            if have >= expected || now >= deadline {
                return Ok(rounds.get(&key).cloned().unwrap_or_default());
            }
            rounds = self
                .arrived
                .wait_timeout(rounds, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}
