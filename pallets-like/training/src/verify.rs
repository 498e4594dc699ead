//! Verification of closed rounds before anything is paid or adopted (issue 22, in the
//! style of Templar's Gauntlet). When a majority of a round's contributors agree on its
//! aggregate, the round closes for training (the next round starts from its adapter) but
//! pays nothing yet: a validator drawn from the closing block's randomness, weighted by
//! bond and other than the round's contributors when possible, replays every receipt —
//! the worker's loss on its assigned data before and after applying its
//! pseudo-gradient — and checks the adapter version's snapshot and held-out loss. Its
//! [`RoundVerification`] then decides: the round's `training_reward` is split among the
//! receipts the aggregate accepted *and* the validator found `Improved` (so made-up
//! hashes, whose payloads nobody can serve, and copies earn nothing), workers whose
//! claimed losses it contradicted lose `contradiction_slash` of their bond, and serving
//! nodes adopt the adapter version only when it says `Adopted`.
//!
//! If the drawn validator has not answered within `verify_blocks` of the closing, any
//! validator may (so one offline validator cannot hold a round's pay forever). The
//! runtime holds no weights: the verdict is the submitting validator's word, not yet a
//! quorum's (see issue 22's notes).

use crate::{params, receipts, shard, Error, Result, RoundKey, CLOSED, EARNED, RECEIPTS, SHARDS};
use neuroshard_balances as balances;
use neuroshard_ponw::spot_checks::slash_bond;
use neuroshard_primitives::{
    blake2_256, slot_lottery, AccountId, AdapterOutcome, Balance, BlockNumber, ContributionOutcome,
    Event, Hash, RoundVerification, SlashReason,
};
use neuroshard_support::{Overlay, Pallet, ReadState, StorageValue};
use parity_scale_codec::{Decode, Encode};

/// A closed round waiting for its verification.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct AwaitingVerification {
    pub key: RoundKey,
    /// The validator drawn to verify it.
    pub verifier: AccountId,
    /// The block the round closed in.
    pub closed_at: BlockNumber,
}

/// Closed rounds not verified yet, oldest first.
pub const AWAITING: StorageValue<Vec<AwaitingVerification>> =
    StorageValue::new(crate::Training::NAME, "Awaiting");

/// The validators (with their bonds) and the randomness a closing round draws its
/// verifier with.
pub struct Verifiers<'a> {
    pub validators: &'a [(AccountId, Balance)],
    pub randomness: Hash,
}

impl Verifiers<'_> {
    /// The verifier of round `key`, weighted by bond, among the validators that did not
    /// contribute to it (all of them when every validator did).
    fn draw(&self, key: &RoundKey, contributors: &[AccountId]) -> Option<AccountId> {
        let outside: Vec<&(AccountId, Balance)> = self
            .validators
            .iter()
            .filter(|(v, _)| !contributors.contains(v))
            .collect();
        let pool = if outside.is_empty() {
            self.validators.iter().collect()
        } else {
            outside
        };
        let seed = blake2_256(&(b"neuroshard/training-verifier", self.randomness, key).encode());
        let weights: Vec<Balance> = pool.iter().map(|(_, bond)| *bond).collect();
        let index = slot_lottery::pick_weighted(&seed, &weights)?;
        Some(pool[index].0.clone())
    }
}

/// Rounds waiting for verification.
pub fn awaiting(state: &impl ReadState) -> Result<Vec<AwaitingVerification>> {
    Ok(AWAITING.get(state)?.unwrap_or_default())
}

/// Queues the verification of the round `key` that closed at `now`.
pub(crate) fn request(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    key: RoundKey,
    contributors: &[AccountId],
    verifiers: &Verifiers<'_>,
) -> Result<()> {
    let verifier = verifiers
        .draw(&key, contributors)
        .ok_or(Error::NoValidators)?;
    let mut queue = awaiting(overlay)?;
    queue.push(AwaitingVerification {
        key,
        verifier: verifier.clone(),
        closed_at: now,
    });
    AWAITING.put(overlay, &queue);
    overlay.deposit_event(Event::TrainingVerificationRequested {
        layers: key.1,
        round: key.2,
        verifier,
    });
    Ok(())
}

/// `submit_round_verification`: `who` (the drawn verifier, or any of `validators` once
/// `verify_blocks` have passed since the closing) decides the round's pay, slashes and
/// adoption.
pub fn submit_round_verification(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    validators: &[AccountId],
    who: &AccountId,
    v: &RoundVerification,
) -> Result<()> {
    let p = params(overlay)?;
    let key: RoundKey = (v.model, v.layers, v.round);
    let mut queue = awaiting(overlay)?;
    let index = queue
        .iter()
        .position(|a| a.key == key)
        .ok_or(Error::NotAwaitingVerification)?;
    let entry = &queue[index];
    let overdue = now
        > entry
            .closed_at
            .saturating_add(BlockNumber::from(p.verify_blocks));
    if entry.verifier != *who && !(overdue && validators.contains(who)) {
        return Err(Error::NotTheVerifier);
    }
    let mut records = receipts(overlay, &key)?;
    let matches = records.len() == v.checks.len()
        && records
            .iter()
            .zip(&v.checks)
            .all(|(r, c)| r.worker == c.worker);
    if !matches {
        return Err(Error::BadVerification);
    }
    queue.remove(index);
    AWAITING.put(overlay, &queue);
    let paid = |r: &crate::GradientRecord| {
        r.accepted == Some(true) && r.verified == Some(ContributionOutcome::Improved)
    };
    for (r, c) in records.iter_mut().zip(&v.checks) {
        r.verified = Some(c.outcome);
        overlay.deposit_event(Event::TrainingContributionVerified {
            worker: r.worker.clone(),
            layers: v.layers,
            round: v.round,
            outcome: c.outcome,
        });
        if c.outcome == ContributionOutcome::Contradicted {
            let reason = SlashReason::ContradictedTraining {
                layers: v.layers,
                round: v.round,
            };
            slash_bond(overlay, &r.worker, p.contradiction_slash, reason)?;
        }
    }
    // The round's budget is split among its verified, accepted contributors: more
    // accounts never mint more (what does not divide evenly is not minted).
    let verified = records.iter().filter(|r| paid(r)).count() as u32;
    let share = p.training_reward / Balance::from(verified.max(1));
    for r in records.iter().filter(|r| paid(r)) {
        if share > 0 {
            balances::mint(overlay, &r.worker, share)?;
            let total = crate::earned(overlay, &r.worker)?.saturating_add(share);
            EARNED.insert(overlay, &r.worker, &total);
        }
        overlay.deposit_event(Event::TrainingRewardPaid {
            account: r.worker.clone(),
            layers: v.layers,
            round: v.round,
            amount: share,
        });
    }
    RECEIPTS.insert(overlay, &key, &records);
    adopt(overlay, key, v)
}

/// Records the verdict on the round's adapter; an `Adopted` version newer than the
/// shard's adopted one becomes what serving nodes run.
fn adopt(overlay: &mut Overlay<'_>, key: RoundKey, v: &RoundVerification) -> Result<()> {
    let closed = CLOSED
        .get(overlay, &key)?
        .ok_or(Error::NotAwaitingVerification)?;
    let outcome = v.adapter;
    overlay.deposit_event(Event::TrainingAdapterVerified {
        layers: key.1,
        round: key.2,
        adapter: closed.adapter,
        outcome,
        held_out_before: v.held_out_before,
        held_out_after: v.held_out_after,
    });
    let mut state = shard(overlay, key.0, key.1)?;
    let newer = state.adopted.is_none_or(|(round, _)| round < key.2);
    if outcome == AdapterOutcome::Adopted && newer {
        state.adopted = Some((key.2, closed.adapter));
        SHARDS.insert(overlay, &(key.0, key.1), &state);
    }
    Ok(())
}
