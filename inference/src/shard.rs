//! A served shard: the executor for one layer range plus the per-session state a worker
//! keeps — KV caches, the top-k records of its output activations for commitments, and
//! the receipt sequence — behind a thread-safe request handler.

use crate::commitment::{position_topk, ActivationCommitment, PositionTopK};
use crate::error::{InferenceError, Result};
use crate::executor::{argmax_rows, ExecInput, KvCache, ShardExecutor};
use crate::messages::{
    session_hex, Activations, HeadMode, ReceiptRequest, SessionReceipt, ShardInput, ShardOutput,
    ShardRequest, ShardResponse, WireDType,
};
use crate::weights::ModelWeights;
use neuroshard_primitives::{AccountId, Hash, LayerRange, ReceiptBody, SessionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A worker's state for one session.
#[derive(Debug)]
struct Session {
    cache: KvCache,
    /// Top-k records of the output activations, one per cached position.
    topk: Vec<PositionTopK>,
    /// Positions before this are already covered by a receipt.
    receipted_end: u32,
    /// Next receipt sequence number.
    seq: u32,
}

/// One layer range of one model, serving many sessions.
#[derive(Debug)]
pub struct Shard {
    model: Hash,
    layers: LayerRange,
    exec: ShardExecutor,
    sessions: Mutex<HashMap<SessionId, Arc<Mutex<Session>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shard {
    /// Serves `weights` (already sliced to the shard's range) of the model `model`.
    pub fn new(weights: ModelWeights, model: Hash) -> Result<Self> {
        let to16 = |v: usize| {
            u16::try_from(v).map_err(|_| InferenceError::BadRequest(format!("layer {v} too large")))
        };
        let layers = LayerRange::new(to16(weights.range.start)?, to16(weights.range.end)?)
            .map_err(|e| InferenceError::BadRequest(e.to_string()))?;
        Ok(Self {
            model,
            layers,
            exec: ShardExecutor::new(weights)?,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn layers(&self) -> LayerRange {
        self.layers
    }

    pub fn model(&self) -> Hash {
        self.model
    }

    pub fn executor(&self) -> &ShardExecutor {
        &self.exec
    }

    fn session(&self, id: &SessionId) -> Arc<Mutex<Session>> {
        lock(&self.sessions)
            .entry(*id)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Session {
                    cache: self.exec.new_cache(),
                    topk: Vec::new(),
                    receipted_end: 0,
                    seq: 0,
                }))
            })
            .clone()
    }

    /// Number of positions cached for `session`.
    pub fn cached_len(&self, session: &SessionId) -> usize {
        lock(&self.sessions)
            .get(session)
            .map(|s| lock(s).cache.len())
            .unwrap_or(0)
    }

    /// Drops the session's cached positions at or after `pos` (requests do this implicitly
    /// through their `start_pos`).
    pub fn truncate_session(&self, session: &SessionId, pos: usize) -> Result<()> {
        let Some(state) = lock(&self.sessions).get(session).cloned() else {
            return Err(InferenceError::UnknownSession(session_hex(session)));
        };
        let mut s = lock(&state);
        s.cache.truncate(pos)?;
        s.topk.truncate(pos);
        Ok(())
    }

    /// Forgets a session.
    pub fn end_session(&self, session: &SessionId) {
        lock(&self.sessions).remove(session);
    }

    /// Runs a request.
    pub fn handle(&self, req: &ShardRequest) -> Result<ShardResponse> {
        if req.model != self.model {
            return Err(InferenceError::WrongModel {
                served: hex::encode(self.model.as_bytes()),
                requested: hex::encode(req.model.as_bytes()),
            });
        }
        if req.layers != self.layers {
            return Err(InferenceError::BadRequest(format!(
                "request for layers {} sent to shard {}",
                req.layers, self.layers
            )));
        }
        let start = req.start_pos as usize;
        let session = self.session(&req.session);
        let mut s = lock(&session);
        let hidden_in;
        let input = match &req.input {
            ShardInput::Tokens(t) => ExecInput::Tokens(t),
            ShardInput::Hidden(a) => {
                hidden_in = a.to_tensor()?;
                ExecInput::Hidden(&hidden_in)
            }
        };
        let out = self
            .exec
            .forward(&mut s.cache, input, start)
            .map_err(|e| match e {
                InferenceError::CacheGap { have, start, .. } => InferenceError::CacheGap {
                    session: session_hex(&req.session),
                    have,
                    start,
                },
                e => e,
            })?;
        s.topk.truncate(start);
        s.topk.extend(position_topk(&out)?);
        // Positions before `receipted_end` recomputed here (a replay) stay receipted once:
        // the next receipt starts where the last one ended, so no position is paid twice.
        let output = if self.exec.weights().is_last() {
            let logits = self.exec.head(&out)?;
            match req.head {
                HeadMode::Argmax => ShardOutput::Argmax(argmax_rows(&logits)?),
                HeadMode::Logits => {
                    ShardOutput::Logits(Activations::from_tensor(&logits, WireDType::F32)?)
                }
            }
        } else {
            ShardOutput::Hidden(Activations::from_tensor(&out, req.wire)?)
        };
        Ok(ShardResponse {
            session: req.session,
            start_pos: req.start_pos,
            output,
        })
    }

    /// Builds the unsigned receipt body (and its commitment) for the session's positions
    /// not yet receipted, up to `req.until`. The worker signs the body; the client
    /// counter-signs it.
    pub fn receipt(&self, worker: AccountId, req: &ReceiptRequest) -> Result<SessionReceipt> {
        let session = lock(&self.sessions)
            .get(&req.session)
            .cloned()
            .ok_or_else(|| InferenceError::UnknownSession(session_hex(&req.session)))?;
        let mut s = lock(&session);
        let until = (req.until as usize).min(s.topk.len());
        let from = s.receipted_end as usize;
        if from >= until {
            return Err(InferenceError::BadRequest(format!(
                "nothing to receipt: positions {from}..{until}"
            )));
        }
        let commitment = ActivationCommitment::from_positions(from as u32, &s.topk[from..until]);
        let body = ReceiptBody {
            worker,
            client: req.client.clone(),
            model: self.model,
            layers: self.layers,
            session: req.session,
            epoch: req.epoch,
            seq: s.seq,
            position_start: from as u32,
            position_end: until as u32,
            commitment: commitment.hash(),
        };
        s.seq += 1;
        s.receipted_end = until as u32;
        Ok(SessionReceipt {
            body,
            commitment,
            worker_signature: None,
        })
    }
}
