//! Deliberate faults of the chain client for tests (`fault-injection` builds only): an
//! author that leaves receipt batches out of its blocks, and submissions of the node's
//! own services without the dry run (so a failing call is included and fails in a block,
//! as a misbehaving peer's gossiped one would).

use super::{Client, Validation};
use neuroshard_primitives::{AccountId, Hash, SignedExtrinsic};
use tracing::info;

impl Client {
    /// Fault injection for tests: like [`Self::sign_and_submit`] but with only the cheap
    /// checks a gossiped transaction gets (no dry run), so a call that fails is still
    /// included and fails in a block, as it would when a misbehaving peer gossips it.
    pub fn sign_and_submit_unchecked(
        &self,
        key: &neuroshard_primitives::Keypair,
        call: neuroshard_primitives::Call,
    ) -> anyhow::Result<Hash> {
        self.sign_and_submit_as(
            key,
            call,
            Validation::Gossip {
                sample_seed: rand::random(),
            },
        )
    }
}

/// `candidates` without receipt batches, nor anything their senders sent after one (a
/// later nonce could not apply without it): the `fault_omit_receipts` author's choice.
pub(super) fn without_receipts(candidates: Vec<SignedExtrinsic>) -> Vec<SignedExtrinsic> {
    use neuroshard_primitives::{Call, PonwCall};
    let mut stopped: Vec<AccountId> = Vec::new();
    let kept: Vec<SignedExtrinsic> = candidates
        .into_iter()
        .filter(|xt| {
            if stopped.contains(&xt.signer) {
                return false;
            }
            if matches!(xt.call, Call::Ponw(PonwCall::SubmitReceipts { .. })) {
                stopped.push(xt.signer.clone());
                return false;
            }
            true
        })
        .collect();
    if !stopped.is_empty() {
        info!(
            senders = stopped.len(),
            "fault injection: receipt batches left out of this block"
        );
    }
    kept
}
