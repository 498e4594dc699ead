//! Deliberate faults of the chain client for tests (`fault-injection` builds only): an
//! author that leaves receipt batches out of its blocks (all, or those its own
//! randomness would sample), and submissions of the node's
//! own services without the dry run (so a failing call is included and fails in a block,
//! as a misbehaving peer's gossiped one would).

use super::{Client, ClientError, Validation};
use neuroshard_primitives::{
    slot_lottery, AccountId, Call, Hash, PonwCall, Receipt, SignedExtrinsic, VrfSignature,
};
use neuroshard_runtime::{ponw, ReadState, Runtime};
use std::str::FromStr;
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

/// What an author with `--fault-omit-receipts` leaves out of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OmitReceipts {
    /// Every receipt batch (hoping to keep receipts from ever being drawn).
    All,
    /// The batches with a receipt its own block's randomness would sample: the receipts
    /// it could tell are checked, were receipts drawn from the randomness of the block
    /// that includes them. The node also keeps its own batches from gossip, so that only
    /// it includes them: an author colluding with the client (here, the same node) that
    /// lets through only the receipts nobody would check.
    Sampled,
}

impl FromStr for OmitReceipts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "sampled" => Ok(Self::Sampled),
            other => Err(format!("{other:?} is not all or sampled")),
        }
    }
}

impl OmitReceipts {
    /// `candidates` without the batches this mode omits from a block `author` builds at
    /// `slot` with `vrf` on `state`, nor anything their senders sent after one (a later
    /// nonce could not apply without it).
    pub(super) fn apply(
        self,
        state: &impl ReadState,
        (author, slot, vrf): (&AccountId, u64, &VrfSignature),
        candidates: Vec<SignedExtrinsic>,
    ) -> Result<Vec<SignedExtrinsic>, ClientError> {
        // `Sampled`: what this block's randomness will be (the parent's mixed with our
        // VRF output, which only we know before the block is out) and the sampling rate.
        let predicted = match self {
            OmitReceipts::All => None,
            OmitReceipts::Sampled => {
                let parent = Runtime::randomness(state)?;
                let Some(output) = slot_lottery::verify(author, &parent, slot, vrf) else {
                    return Ok(candidates); // not our slot's signature: nothing to predict
                };
                let randomness = slot_lottery::next_randomness(&parent, &output);
                Some((randomness, Runtime::params(state)?.ponw.spot_check_permill))
            }
        };
        let omit = |receipts: &[Receipt]| match &predicted {
            None => true,
            Some((randomness, permill)) => receipts
                .iter()
                .any(|r| ponw::spot_checks::is_sampled(randomness, &r.body.id(), *permill)),
        };
        Ok(without_batches(candidates, omit))
    }

    /// Whether the node keeps `xt`, its own submission, from gossip.
    pub(super) fn keeps_from_gossip(self, xt: &SignedExtrinsic) -> bool {
        self == OmitReceipts::Sampled
            && matches!(xt.call, Call::Ponw(PonwCall::SubmitReceipts { .. }))
    }
}

/// `candidates` without the receipt batches `omit` picks, nor anything their senders
/// sent after one.
fn without_batches(
    candidates: Vec<SignedExtrinsic>,
    omit: impl Fn(&[Receipt]) -> bool,
) -> Vec<SignedExtrinsic> {
    let mut stopped: Vec<AccountId> = Vec::new();
    let kept: Vec<SignedExtrinsic> = candidates
        .into_iter()
        .filter(|xt| {
            if stopped.contains(&xt.signer) {
                return false;
            }
            match &xt.call {
                Call::Ponw(PonwCall::SubmitReceipts { receipts }) if omit(receipts) => {
                    stopped.push(xt.signer.clone());
                    false
                }
                _ => true,
            }
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
