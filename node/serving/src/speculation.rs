//! Speculative decoding only while it pays: the node's n-gram drafter adds draft
//! positions to every verification round, which is worth it for a generation running
//! alone (a round's fixed cost — three hops, the head, the client's turn — dominates and
//! the extra rows are nearly free), but not once generations share batched steps: then
//! the batch already fills the kernels' rows, every drafted position costs about as much
//! compute as a real one, and at the n-gram drafter's usual acceptance (~20 % on chat
//! prompts) most of them are thrown away. Worse, they push a step past `--max-batch`, so
//! sessions fall out of one step into two and wait for each other.
//!
//! [`Running`] counts the node's generations in progress; [`GatedDrafter`] drafts only
//! while at most [`SPECULATE_UP_TO`] run and proposes nothing otherwise (a round of one
//! position). The drafter never changes which tokens are accepted, so greedy output is
//! the same either way.

use neuroshard_inference::drafter::{Draft, Drafter};
use rand::rngs::StdRng;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Generations running at once up to which the node drafts.
pub const SPECULATE_UP_TO: usize = 1;

/// The node's generations in progress.
#[derive(Debug, Default)]
pub struct Running(AtomicUsize);

/// Counts one generation while held.
pub struct RunningGuard<'a>(&'a Running);

impl Running {
    /// Counts a generation until the guard drops.
    pub fn enter(&self) -> RunningGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        RunningGuard(self)
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A drafter that proposes only while at most [`SPECULATE_UP_TO`] generations run.
pub struct GatedDrafter<'a, D> {
    pub inner: D,
    pub running: &'a Running,
}

impl<D: Drafter> Drafter for GatedDrafter<'_, D> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn propose(
        &mut self,
        context: &[u32],
        k: usize,
        temperature: f64,
        rng: &mut StdRng,
    ) -> neuroshard_inference::Result<Draft> {
        if self.running.count() > SPECULATE_UP_TO {
            return Ok(Draft::default());
        }
        self.inner.propose(context, k, temperature, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_inference::drafter::NgramDrafter;
    use rand::SeedableRng;

    #[test]
    fn drafts_alone_and_not_beside_other_generations() {
        let running = Running::default();
        let mut drafter = GatedDrafter {
            inner: NgramDrafter::default(),
            running: &running,
        };
        let context = [1, 2, 3, 4, 1, 2];
        let mut rng = StdRng::seed_from_u64(0);
        let me = running.enter();
        let alone = drafter.propose(&context, 2, 0.0, &mut rng).unwrap();
        assert_eq!(alone.tokens, vec![3, 4]);
        let other = running.enter();
        assert!(drafter
            .propose(&context, 2, 0.0, &mut rng)
            .unwrap()
            .tokens
            .is_empty());
        drop(other);
        assert_eq!(drafter.propose(&context, 2, 0.0, &mut rng).unwrap(), alone);
        drop(me);
        assert_eq!(running.count(), 0);
    }
}
