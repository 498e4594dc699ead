//! The two calls of the holders: submitting a gradient receipt to a shard's open round,
//! and reporting a round's aggregate, which closes the round once a majority of the
//! contributors agree and queues its verification (see [`crate::verify`]).

use crate::verify::{self, Verifiers};
use crate::{
    params, receipts, shard, ClosedRound, Error, GradientRecord, Result, RoundKey, ShardTraining,
    CLOSED, RECEIPTS, SHARDS, VOTES,
};
use neuroshard_ponw as ponw;
use neuroshard_primitives::{
    AccountId, BlockNumber, Event, GradientReceipt, RoundResult, MAX_ACCEPTED_PER_ROUND,
};
use neuroshard_support::Overlay;

/// `submit_gradient_receipt`: records a holder's signed receipt for its shard's current
/// round in block `now` (anyone may relay it; the worker named in it is the one
/// credited). The first receipt opens the round's collection window.
pub fn submit_gradient_receipt(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    receipt: &GradientReceipt,
) -> Result<()> {
    let p = params(overlay)?;
    let b = &receipt.body;
    if !receipt.signature_is_valid() {
        return Err(Error::BadSignature);
    }
    let chain_model = ponw::params(overlay)?.model;
    if b.model != chain_model.hash {
        return Err(Error::WrongModel(b.model));
    }
    if !chain_model.is_canonical(&b.layers) {
        return Err(Error::NotACanonicalRange(b.layers));
    }
    let serves = ponw::worker(overlay, &b.worker)?
        .map(|w| w.model == b.model && w.serves(&b.layers))
        .unwrap_or(false);
    if !serves {
        return Err(Error::NotAHolder(b.layers));
    }
    let mut state = shard(overlay, b.model, b.layers)?;
    if b.round != state.round {
        return Err(Error::WrongRound {
            expected: state.round,
            got: b.round,
        });
    }
    let key: RoundKey = (b.model, b.layers, b.round);
    if let Some(until) = state.collecting_until(p.collect_blocks) {
        if state.stale_window(p.collect_blocks, now).is_some() {
            // Stale: no majority formed in time (too few receipts for the robust rule,
            // or holders that disagree). Start the round over from this receipt.
            let dropped = receipts(overlay, &key)?.len() as u32;
            RECEIPTS.remove(overlay, &key);
            VOTES.remove(overlay, &key);
            state.opened_at = None;
            overlay.deposit_event(Event::TrainingRoundRestarted {
                layers: b.layers,
                round: b.round,
                dropped,
                worker: b.worker.clone(),
            });
        } else if now > until {
            return Err(Error::CollectionClosed {
                round: b.round,
                until,
            });
        }
    }
    if let Some(current) = state.adapter {
        if b.base_adapter != current {
            return Err(Error::WrongBaseAdapter {
                expected: current,
                got: b.base_adapter,
            });
        }
    }
    let mut records = receipts(overlay, &key)?;
    if records.iter().any(|r| r.worker == b.worker) {
        return Err(Error::DuplicateReceipt);
    }
    if records
        .iter()
        .any(|r| r.pseudo_gradient == b.pseudo_gradient)
    {
        return Err(Error::DuplicateGradient(b.pseudo_gradient));
    }
    if records.len() >= p.max_contributors as usize {
        return Err(Error::RoundFull(p.max_contributors));
    }
    records.push(GradientRecord {
        worker: b.worker.clone(),
        receipt: receipt.id(),
        pseudo_gradient: b.pseudo_gradient,
        loss_before: b.loss_before,
        loss_after: b.loss_after,
        accepted: None,
        verified: None,
    });
    RECEIPTS.insert(overlay, &key, &records);
    if state.opened_at.is_none() {
        state.opened_at = Some(now);
        SHARDS.insert(overlay, &(b.model, b.layers), &state);
    }
    overlay.deposit_event(Event::GradientReceiptSubmitted {
        worker: b.worker.clone(),
        model: b.model,
        layers: b.layers,
        round: b.round,
        pseudo_gradient: b.pseudo_gradient,
    });
    Ok(())
}

/// `report_round_result`: `who` (a contributor of the round) reports, in block `now`,
/// the aggregate it computed; with a collection window, only once the window is over.
/// When a strict majority of the contributors (and at least `min_contributors`) have
/// reported the same result, the round closes and its verification is requested from
/// a validator drawn among `verifiers`. A contributor's report that arrives
/// after the majority closed the round (every report but the deciding ones races the
/// closing block) is accepted and changes nothing.
pub fn report_round_result(
    overlay: &mut Overlay<'_>,
    now: BlockNumber,
    who: &AccountId,
    result: &RoundResult,
    verifiers: &Verifiers<'_>,
) -> Result<()> {
    let p = params(overlay)?;
    let state = shard(overlay, result.model, result.layers)?;
    if result.round < state.round {
        let key: RoundKey = (result.model, result.layers, result.round);
        let contributed = receipts(overlay, &key)?.iter().any(|r| &r.worker == who);
        if contributed && CLOSED.contains(overlay, &key) {
            return Ok(());
        }
    }
    if result.round != state.round {
        return Err(Error::WrongRound {
            expected: state.round,
            got: result.round,
        });
    }
    if p.collect_blocks > 0 {
        if let Some(until) = state.stale_window(p.collect_blocks, now) {
            return Err(Error::CollectionClosed {
                round: result.round,
                until,
            });
        }
        let until = state.collecting_until(p.collect_blocks);
        if until.is_none_or(|until| now <= until) {
            return Err(Error::CollectionOpen {
                round: result.round,
                until,
            });
        }
    }
    let key: RoundKey = (result.model, result.layers, result.round);
    let records = receipts(overlay, &key)?;
    if !records.iter().any(|r| &r.worker == who) {
        return Err(Error::NotAContributor);
    }
    let a = &result.accepted;
    if a.is_empty() || a.len() > MAX_ACCEPTED_PER_ROUND || a.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::BadAcceptedSet);
    }
    if let Some(unknown) = a
        .iter()
        .find(|h| !records.iter().any(|r| r.pseudo_gradient == **h))
    {
        return Err(Error::UnknownGradient(*unknown));
    }
    let mut votes = VOTES.get(overlay, &key)?.unwrap_or_default();
    if votes.iter().any(|(w, _)| w == who) {
        return Err(Error::AlreadyReported);
    }
    let id = result.id();
    votes.push((who.clone(), id));
    overlay.deposit_event(Event::RoundResultReported {
        worker: who.clone(),
        layers: result.layers,
        round: result.round,
        result: id,
    });
    let agreeing = votes.iter().filter(|(_, v)| *v == id).count();
    if agreeing * 2 > records.len() && agreeing >= p.min_contributors as usize {
        VOTES.remove(overlay, &key);
        let contributors: Vec<AccountId> = records.iter().map(|r| r.worker.clone()).collect();
        close_round(overlay, &key, records, result)?;
        verify::request(overlay, now, key, &contributors, verifiers)
    } else {
        VOTES.insert(overlay, &key, &votes);
        Ok(())
    }
}

fn close_round(
    overlay: &mut Overlay<'_>,
    key: &RoundKey,
    mut records: Vec<GradientRecord>,
    result: &RoundResult,
) -> Result<()> {
    for r in records.iter_mut() {
        r.accepted = Some(result.accepted.contains(&r.pseudo_gradient));
    }
    let accepted = records.iter().filter(|r| r.accepted == Some(true)).count() as u32;
    let rejected = records.len() as u32 - accepted;
    RECEIPTS.insert(overlay, key, &records);
    CLOSED.insert(
        overlay,
        key,
        &ClosedRound {
            adapter: result.adapter,
            accepted: result.accepted.clone(),
        },
    );
    let before = shard(overlay, result.model, result.layers)?;
    SHARDS.insert(
        overlay,
        &(result.model, result.layers),
        &ShardTraining {
            round: result.round.saturating_add(1),
            adapter: Some(result.adapter),
            opened_at: None,
            adopted: before.adopted,
        },
    );
    overlay.deposit_event(Event::TrainingRoundFinalized {
        model: result.model,
        layers: result.layers,
        round: result.round,
        adapter: result.adapter,
        accepted,
        rejected,
    });
    Ok(())
}
