//! Receipt batches: every check that needs no cryptography runs first, receipt by
//! receipt, then all worker and client signatures of the batch are verified together
//! (schnorrkel batch verification across the rayon pool), and only then is anything
//! credited. Replay protection is a strictly increasing sequence number per
//! (worker, session, layers), pruned once its epoch leaves the acceptance window. Each
//! receipt's fee is checked against the client's escrow during the first pass and paid
//! (burn + worker share) when the batch is applied.

use crate::{escrow, params, rewards, workers, Error, Result};
use neuroshard_primitives::crypto::verify_batch;
use neuroshard_primitives::{
    AccountId, Balance, Event, LayerRange, Receipt, RejectReason, SessionId,
};
use neuroshard_support::{BlockContext, Overlay, StorageMap};
use parity_scale_codec::{Decode, Encode};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Highest accepted sequence number of one (worker, session, layers).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionState {
    pub last_seq: u32,
    /// Epoch of the receipt that set `last_seq`; the entry is pruned after the window.
    pub epoch: u32,
}

type SessionKey = (AccountId, SessionId, LayerRange);

pub const SESSIONS: StorageMap<SessionKey, SessionState> = StorageMap::new("Ponw", "Sessions");

fn reject(index: usize, reason: RejectReason) -> Error {
    Error::ReceiptRejected {
        index: index as u32,
        reason,
    }
}

/// `submit_receipts`: verifies a batch and credits each worker's tally.
pub fn submit_receipts(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    receipts: &[Receipt],
) -> Result<()> {
    let p = params(overlay)?;
    if receipts.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if receipts.len() > p.max_receipts_per_batch as usize {
        return Err(Error::TooManyReceipts {
            count: receipts.len(),
            limit: p.max_receipts_per_batch,
        });
    }
    let mut seen_ids = HashSet::with_capacity(receipts.len());
    let mut workers_cache: HashMap<AccountId, Option<workers::WorkerInfo>> = HashMap::new();
    let mut sessions: HashMap<SessionKey, SessionState> = HashMap::new();
    // Escrow still available per client as the batch is checked.
    let mut escrow_left: HashMap<AccountId, Balance> = HashMap::new();
    let mut fees = Vec::with_capacity(receipts.len());

    for (i, receipt) in receipts.iter().enumerate() {
        let body = &receipt.body;
        body.check_shape()
            .map_err(|_| reject(i, RejectReason::BadShape))?;
        if body.model != p.model.hash {
            return Err(reject(i, RejectReason::WrongModel));
        }
        let too_old = ctx.epoch.saturating_sub(body.epoch) > p.receipt_epoch_window;
        if body.epoch > ctx.epoch || too_old {
            return Err(reject(i, RejectReason::StaleEpoch));
        }
        if !seen_ids.insert(body.id()) {
            return Err(reject(i, RejectReason::Duplicate));
        }
        let info = match workers_cache.get(&body.worker) {
            Some(info) => info.clone(),
            None => {
                let info = workers::worker(overlay, &body.worker)?;
                workers_cache.insert(body.worker.clone(), info.clone());
                info
            }
        };
        let info = info.ok_or_else(|| reject(i, RejectReason::UnknownWorker))?;
        if !info.serves(&body.layers) {
            return Err(reject(i, RejectReason::LayersNotServed));
        }
        let key = (body.worker.clone(), body.session, body.layers);
        let last = match sessions.get(&key) {
            Some(s) => Some(s.last_seq),
            None => SESSIONS.get(overlay, &key)?.map(|s| s.last_seq),
        };
        if last.is_some_and(|last| body.seq <= last) {
            return Err(reject(i, RejectReason::Replay));
        }
        sessions.insert(
            key,
            SessionState {
                last_seq: body.seq,
                epoch: body.epoch,
            },
        );
        let layer_tokens = u64::from(body.tokens()) * u64::from(body.layers.len());
        let (fee, burn) = escrow::fee_for(&p, layer_tokens);
        let left = match escrow_left.get(&body.client) {
            Some(left) => *left,
            None => escrow::escrow(overlay, &body.client)?.amount,
        };
        let left = left
            .checked_sub(fee)
            .ok_or_else(|| reject(i, RejectReason::InsufficientEscrow))?;
        escrow_left.insert(body.client.clone(), left);
        fees.push((fee, burn));
    }

    let messages: Vec<_> = receipts.iter().flat_map(|r| r.signed_messages()).collect();
    verify_batch(&messages).map_err(|bad| reject(bad / 2, RejectReason::BadSignature))?;

    for (key, state) in &sessions {
        SESSIONS.insert(overlay, key, state);
    }
    // Sum per worker (tallies) and per (client, worker) pair (fees), so storage is
    // touched once per account, not once per receipt.
    let mut credits: BTreeMap<AccountId, (u64, u64)> = BTreeMap::new();
    let mut payments: BTreeMap<(AccountId, AccountId), (Balance, Balance)> = BTreeMap::new();
    for (receipt, (fee, burned)) in receipts.iter().zip(fees) {
        let body = &receipt.body;
        let tokens = u64::from(body.tokens());
        let credit = credits.entry(body.worker.clone()).or_default();
        credit.0 += tokens;
        credit.1 += tokens * u64::from(body.layers.len());
        let payment = payments
            .entry((body.client.clone(), body.worker.clone()))
            .or_default();
        payment.0 += fee;
        payment.1 += burned;
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
    }
    for ((client, worker), (fee, burned)) in payments {
        escrow::pay(overlay, &client, &worker, fee, burned)?;
    }
    for (worker, (tokens, layer_tokens)) in credits {
        rewards::credit(overlay, &worker, |t| {
            t.tokens += tokens;
            t.layer_tokens += layer_tokens;
        })?;
    }
    Ok(())
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
