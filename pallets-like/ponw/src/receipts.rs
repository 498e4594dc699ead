//! Receipt batches. A batch is judged receipt by receipt in three passes: the checks that
//! need no state beyond the worker registry (shape, model, epoch window, worker
//! registered, layers served), then every surviving receipt's worker and client
//! signatures together (schnorrkel batch verification across the rayon pool; only a
//! chunk that fails is re-checked entry by entry), then, in batch order, the checks that
//! depend on earlier receipts (duplicate in the batch, replay, the client's escrow, the
//! worker's exposure).
//! Replay protection is a strictly increasing sequence number per (worker, session,
//! layers), pruned once its epoch leaves the acceptance window.
//!
//! The good receipts of a batch are accepted (`ReceiptAccepted`; fee taken from escrow
//! and held with the tokens until the receipt settles, see `crate::settlement`) and
//! every bad one is refused with a
//! `ReceiptRejected` event naming the reason, so one bad receipt cannot spoil a batch of
//! thousands. A batch with no good receipt fails as a whole, with the first one's reason.

use crate::{escrow, params, settlement, workers, Error, Result};
use neuroshard_primitives::crypto::invalid_entries;
use neuroshard_primitives::{
    AccountId, Balance, Event, LayerRange, Receipt, RejectReason, SessionId,
};
use neuroshard_support::{BlockContext, Overlay, StorageMap};
use parity_scale_codec::{Decode, Encode};
use std::collections::{HashMap, HashSet};

/// Highest accepted sequence number of one (worker, session, layers).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct SessionState {
    pub last_seq: u32,
    /// Epoch of the receipt that set `last_seq`; the entry is pruned after the window.
    pub epoch: u32,
}

type SessionKey = (AccountId, SessionId, LayerRange);

pub const SESSIONS: StorageMap<SessionKey, SessionState> = StorageMap::new("Ponw", "Sessions");

/// The first pass: what can be told from the receipt and the worker registry alone.
fn check_standalone(
    overlay: &Overlay<'_>,
    ctx: &BlockContext,
    p: &crate::Params,
    workers_cache: &mut HashMap<AccountId, Option<workers::WorkerInfo>>,
    receipt: &Receipt,
) -> Result<std::result::Result<(), RejectReason>> {
    let body = &receipt.body;
    if body.check_shape().is_err() {
        return Ok(Err(RejectReason::BadShape));
    }
    if body.model != p.model.hash {
        return Ok(Err(RejectReason::WrongModel));
    }
    let too_old = ctx.epoch.saturating_sub(body.epoch) > p.receipt_epoch_window;
    if body.epoch > ctx.epoch || too_old {
        return Ok(Err(RejectReason::StaleEpoch));
    }
    let info = match workers_cache.get(&body.worker) {
        Some(info) => info.clone(),
        None => {
            let info = workers::worker(overlay, &body.worker)?;
            workers_cache.insert(body.worker.clone(), info.clone());
            info
        }
    };
    let Some(info) = info else {
        return Ok(Err(RejectReason::UnknownWorker));
    };
    if !info.serves(&body.layers) {
        return Ok(Err(RejectReason::LayersNotServed));
    }
    Ok(Ok(()))
}

/// How many receipts of a batch a node checks the signatures of before it pools the
/// batch ([`precheck_receipts`]).
pub const PRECHECK_SAMPLE: usize = 8;

/// The checks a node makes of a `submit_receipts` batch before it pools or forwards it:
/// the batch's size, and the shape and both signatures of [`PRECHECK_SAMPLE`] of its
/// receipts drawn with `seed` (the node's own randomness, so the sender cannot tell
/// which). An honest batch always passes: its client checked each worker signature
/// before counter-signing. A batch of bad signatures fails after at most
/// `2 x PRECHECK_SAMPLE` verifications instead of thousands, and a batch that passes
/// is checked in full only in a block, where its sender has paid the fee.
pub fn precheck_receipts(
    state: &impl neuroshard_support::ReadState,
    receipts: &[Receipt],
    seed: &[u8; 32],
) -> Result<()> {
    let p = params(state)?;
    check_batch_size(&p, receipts)?;
    for k in 0..PRECHECK_SAMPLE.min(receipts.len()) {
        let draw = neuroshard_primitives::blake2_256(&(seed, k as u32).encode());
        let mut word = [0u8; 8];
        word.copy_from_slice(&draw.as_bytes()[..8]);
        let index = (u64::from_le_bytes(word) % receipts.len() as u64) as usize;
        let receipt = &receipts[index];
        let reason = if receipt.body.check_shape().is_err() {
            Some(RejectReason::BadShape)
        } else if !invalid_entries(&receipt.signed_messages()).is_empty() {
            Some(RejectReason::BadSignature)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::ReceiptRejected {
                index: index as u32,
                reason,
            });
        }
    }
    Ok(())
}

/// A batch must hold at least one receipt and at most the chain's limit.
fn check_batch_size(p: &crate::Params, receipts: &[Receipt]) -> Result<()> {
    if receipts.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if receipts.len() > p.max_receipts_per_batch as usize {
        return Err(Error::TooManyReceipts {
            count: receipts.len(),
            limit: p.max_receipts_per_batch,
        });
    }
    Ok(())
}

/// `submit_receipts`: judges a batch receipt by receipt, pays and credits the good ones
/// and records why each bad one was refused.
pub fn submit_receipts(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    receipts: &[Receipt],
) -> Result<()> {
    let p = params(overlay)?;
    check_batch_size(&p, receipts)?;
    let mut verdicts: Vec<std::result::Result<(), RejectReason>> =
        Vec::with_capacity(receipts.len());
    let mut workers_cache = HashMap::new();
    for receipt in receipts {
        verdicts.push(check_standalone(
            overlay,
            ctx,
            &p,
            &mut workers_cache,
            receipt,
        )?);
    }

    // Signatures of the receipts still standing (two per receipt: worker, client).
    let standing: Vec<usize> = (0..receipts.len())
        .filter(|&i| verdicts[i].is_ok())
        .collect();
    let messages: Vec<_> = standing
        .iter()
        .flat_map(|&i| receipts[i].signed_messages())
        .collect();
    for bad in invalid_entries(&messages) {
        verdicts[standing[bad / 2]] = Err(RejectReason::BadSignature);
    }

    // In batch order: duplicates, replays, escrow, the worker's exposure.
    let mut seen_ids = HashSet::with_capacity(receipts.len());
    let mut sessions: HashMap<SessionKey, SessionState> = HashMap::new();
    let mut escrow_left: HashMap<AccountId, Balance> = HashMap::new();
    let mut held_fees: HashMap<AccountId, Balance> = HashMap::new();
    let mut fees = vec![(0, 0); receipts.len()];
    for (i, receipt) in receipts.iter().enumerate() {
        if verdicts[i].is_err() {
            continue;
        }
        let body = &receipt.body;
        let id = body.id();
        if seen_ids.contains(&id) {
            verdicts[i] = Err(RejectReason::Duplicate);
            continue;
        }
        let key = (body.worker.clone(), body.session, body.layers);
        let last = match sessions.get(&key) {
            Some(s) => Some(s.last_seq),
            None => SESSIONS.get(overlay, &key)?.map(|s| s.last_seq),
        };
        if last.is_some_and(|last| body.seq <= last) {
            verdicts[i] = Err(RejectReason::Replay);
            continue;
        }
        let layer_tokens = u64::from(body.tokens()) * u64::from(body.layers.len());
        let (fee, burn) = escrow::fee_for(&p, layer_tokens);
        let left = match escrow_left.get(&body.client) {
            Some(left) => *left,
            None => escrow::escrow(overlay, &body.client)?.amount,
        };
        let Some(left) = left.checked_sub(fee) else {
            verdicts[i] = Err(RejectReason::InsufficientEscrow);
            continue;
        };
        let bond = workers_cache
            .get(&body.worker)
            .and_then(|w| w.as_ref())
            .map_or(0, |w| w.bond);
        let held = match held_fees.get(&body.worker) {
            Some(fees) => *fees,
            None => settlement::holding(overlay, &body.worker)?.fees,
        };
        if let Some(reason) = settlement::refuse_exposure(bond, held, fee) {
            verdicts[i] = Err(reason);
            continue;
        }
        held_fees.insert(body.worker.clone(), held + fee);
        seen_ids.insert(id);
        sessions.insert(
            key,
            SessionState {
                last_seq: body.seq,
                epoch: body.epoch,
            },
        );
        escrow_left.insert(body.client.clone(), left);
        fees[i] = (fee, burn);
    }

    if verdicts.iter().all(|v| v.is_err()) {
        let reason = verdicts[0].err().unwrap_or(RejectReason::BadShape);
        return Err(Error::ReceiptRejected { index: 0, reason });
    }
    for (key, state) in &sessions {
        SESSIONS.insert(overlay, key, state);
    }
    let mut accepted = Vec::with_capacity(receipts.len());
    for ((receipt, verdict), (fee, burned)) in receipts.iter().zip(&verdicts).zip(fees) {
        let body = &receipt.body;
        if let Err(reason) = verdict {
            overlay.deposit_event(Event::ReceiptRejected {
                id: body.id(),
                worker: body.worker.clone(),
                client: body.client.clone(),
                reason: *reason,
            });
            continue;
        }
        overlay.deposit_event(Event::ReceiptAccepted {
            id: body.id(),
            worker: body.worker.clone(),
            client: body.client.clone(),
            epoch: body.epoch,
            tokens: body.tokens(),
            layers: body.layers,
            fee,
            burned,
        });
        accepted.push((body.clone(), fee, burned));
    }
    settlement::hold(overlay, ctx, accepted)
}

/// Drops session entries whose epoch can no longer receive receipts.
pub(crate) fn prune_sessions(
    overlay: &mut Overlay<'_>,
    current_epoch: u32,
    window: u32,
) -> Result<()> {
    for (key, state) in SESSIONS.entries(overlay)? {
        if current_epoch.saturating_sub(state.epoch) > window {
            SESSIONS.remove(overlay, &key);
        }
    }
    Ok(())
}
