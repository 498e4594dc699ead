//! A served shard: the executor for one layer range plus the per-session state a worker
//! keeps — KV caches, the inputs it was sent and the top-k records of its outputs (for
//! the commitments of its work records), and the record sequence — behind a thread-safe
//! request handler. [`Shard::record_work`] turns a session's new positions into a
//! chain-agnostic [`WorkRecord`] (the node's billing makes the receipt), and archives
//! its spot-check material so the worker can answer the chain's spot checks after the
//! session ends (see [`crate::spot_check`]).
//!
//! The weights can change while serving (a Proof of Training round merges a new adapter
//! version, [`Shard::serve_weights`]): a session keeps the weights it started with, so
//! its KV cache and its receipts stay consistent, and receipts name the adapter
//! version their session ran.
//!
//! Sessions come from the network, so their number is bounded: a session is created
//! only by a request that starts at position 0, and when [`Shard::max_sessions`] are
//! held the least recently used one is dropped (its client gets a cache gap on its next
//! step and replays its accepted tokens, as after a failover). The KV memory is thus at
//! most `max_sessions × context × 2 × kv_dim × 4` bytes per layer (see
//! [`crate::executor`]).
//!
//! Requests run through the shard's [`crate::batcher::Batcher`]: concurrent requests of
//! different sessions share batched steps, each session's positions computing the same
//! bits as alone, so records, commitments and spot checks stay per session.

use crate::archive::{ArchiveBudget, MaterialArchive, PinOutcome};
use crate::batcher::{BatchFigures, Batcher, Job, NodeQueue, DEFAULT_MAX_BATCH};
use crate::commitment::{ActivationCommitment, PositionTopK};
use crate::error::{InferenceError, Result};
use crate::executor::{argmax_rows, ExecInput, KvCache, ShardExecutor};
use crate::messages::{
    session_hex, Activations, HeadMode, RecordedWork, ShardInput, ShardOutput, ShardRequest,
    ShardResponse, WireDType, WorkRecord, WorkRequest,
};
use crate::prefix_cache::{PrefixCache, PrefixFigures, PrefixScope};
use crate::spot_check::{work_topk, InputLog, SpotCheckMaterial};
use crate::weights::ModelWeights;
use candle_core::{Device, Tensor};
use neuroshard_primitives::{Hash, LayerRange, SessionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The weights a shard serves: an executor over them and the adapter version merged in.
#[derive(Debug)]
pub struct ServedWeights {
    pub exec: ShardExecutor,
    /// `None`: the base model.
    pub adapter: Option<Hash>,
}

/// A worker's state for one session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The weights the session started on (all its positions ran on them).
    pub(crate) weights: Arc<ServedWeights>,
    pub(crate) cache: KvCache,
    /// The inputs of every cached position (what records' input commitments digest).
    inputs: InputLog,
    /// Top-k records of the output activations, one per cached position.
    topk: Vec<PositionTopK>,
    /// Positions before this are already covered by a work record.
    recorded_end: u32,
    /// Next work record's sequence number.
    seq: u32,
}

/// Sessions a shard keeps by default (each holds a KV cache of up to the model's context).
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// The sessions with their last use, for least-recently-used eviction.
#[derive(Debug, Default)]
struct Sessions {
    map: HashMap<SessionId, (Arc<Mutex<Session>>, u64)>,
    clock: u64,
}

impl Sessions {
    fn get(&mut self, id: &SessionId) -> Option<Arc<Mutex<Session>>> {
        self.clock += 1;
        let now = self.clock;
        self.map.get_mut(id).map(|(s, used)| {
            *used = now;
            s.clone()
        })
    }

    /// Inserts a session, first dropping the least recently used ones beyond `max - 1`.
    fn insert(&mut self, id: SessionId, session: Session, max: usize) -> Arc<Mutex<Session>> {
        while self.map.len() >= max.max(1) {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.clock += 1;
        let session = Arc::new(Mutex::new(session));
        self.map.insert(id, (session.clone(), self.clock));
        session
    }
}

/// One layer range of one model, serving many sessions.
#[derive(Debug)]
pub struct Shard {
    model: Hash,
    layers: LayerRange,
    current: RwLock<Arc<ServedWeights>>,
    sessions: Mutex<Sessions>,
    max_sessions: usize,
    archive: Mutex<MaterialArchive>,
    /// Runs concurrent requests in shared steps (continuous batching).
    batcher: Batcher,
    /// Clients' shared prompt prefixes (see [`crate::prefix_cache`]).
    pub(crate) prefix: Mutex<PrefixCache>,
    #[cfg(feature = "fault-injection")]
    fault: Option<crate::fault::Fault>,
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
            current: RwLock::new(Arc::new(ServedWeights {
                exec: ShardExecutor::new(weights)?,
                adapter: None,
            })),
            sessions: Mutex::new(Sessions::default()),
            max_sessions: DEFAULT_MAX_SESSIONS,
            archive: Mutex::new(MaterialArchive::new(ArchiveBudget::default())),
            batcher: Batcher::new(DEFAULT_MAX_BATCH),
            prefix: Mutex::new(PrefixCache::new(0)),
            #[cfg(feature = "fault-injection")]
            fault: None,
        })
    }

    /// The same shard faking `fault.permill` of its positions (a cheating worker).
    #[cfg(feature = "fault-injection")]
    pub fn with_fault(mut self, fault: crate::fault::SkipWork) -> Self {
        self.fault = Some(fault.into());
        self
    }

    /// The same shard cheating as `fault` says (a cheating worker): faults that change
    /// how the layers run swap the served executor, the others fake outputs.
    #[cfg(feature = "fault-injection")]
    pub fn try_with_fault(mut self, fault: crate::fault::Fault) -> Result<Self> {
        let current = self.weights();
        if let Some(exec) = crate::fault::degraded_executor(&current.exec, fault)? {
            self.current = RwLock::new(Arc::new(ServedWeights {
                exec,
                adapter: current.adapter,
            }));
        }
        self.fault = Some(fault);
        Ok(self)
    }

    /// The spot-check material of a work record this shard issued (by
    /// [`WorkRecord::id`]), while archived.
    pub fn material(&self, work: &Hash) -> Option<SpotCheckMaterial> {
        lock(&self.archive).get(work)
    }

    /// Keeps the material of the work record `work` until released: its receipt reached
    /// the chain, paid by `owner` (see [`crate::archive`]).
    pub fn pin_material(&self, work: &Hash, owner: [u8; 32]) -> PinOutcome {
        lock(&self.archive).pin(work, owner)
    }

    /// Drops pinned material the chain no longer needs.
    pub fn release_material(&self, work: &Hash) {
        lock(&self.archive).release(work)
    }

    /// The work records whose material is pinned.
    pub fn pinned_material(&self) -> Vec<Hash> {
        lock(&self.archive).pinned()
    }

    /// The same shard with these material budgets.
    pub fn with_archive_budget(self, budget: ArchiveBudget) -> Self {
        *lock(&self.archive) = MaterialArchive::new(budget);
        self
    }

    /// The same shard keeping at most `max` sessions.
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// The same shard running at most `max` positions per batched step.
    pub fn with_max_batch(mut self, max: usize) -> Self {
        let (node, first) = self.batcher.link();
        self.batcher = Batcher::new(max).linked(node, first);
        self
    }

    /// The same shard as one stage of a node whose shards' batchers share `node` (see
    /// [`crate::batcher::NodeQueue`]); the shard starting the model is the first stage.
    pub fn with_node_queue(mut self, node: Arc<NodeQueue>) -> Self {
        let max = self.batcher.max_positions();
        self.batcher = Batcher::new(max).linked(node, self.layers.start == 0);
        self
    }

    /// The same shard caching clients' prompt prefixes in up to `bytes` bytes (0, the
    /// default: no prefix caching).
    pub fn with_prefix_cache(self, bytes: usize) -> Self {
        *lock(&self.prefix) = PrefixCache::new(bytes);
        self
    }

    /// Hits, misses and memory of the prefix cache.
    pub fn prefix_figures(&self) -> PrefixFigures {
        lock(&self.prefix).figures()
    }

    /// Positions per batched step at most.
    pub fn max_batch(&self) -> usize {
        self.batcher.max_positions()
    }

    /// Queue length and batch sizes of the batched steps.
    pub fn batch_figures(&self) -> BatchFigures {
        self.batcher.figures()
    }

    /// Most sessions kept at once.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    pub fn layers(&self) -> LayerRange {
        self.layers
    }

    pub fn model(&self) -> Hash {
        self.model
    }

    /// The weights new sessions start on.
    pub fn weights(&self) -> Arc<ServedWeights> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The adapter version new sessions run (`None`: the base model).
    pub fn adapter(&self) -> Option<Hash> {
        self.weights().adapter
    }

    /// Serves `weights` (the shard's range of the model, with adapter version `adapter`
    /// merged in) to sessions that start from now on; running sessions finish on the
    /// weights they started with.
    pub fn serve_weights(&self, weights: ModelWeights, adapter: Option<Hash>) -> Result<()> {
        if weights.range != (self.layers.start as usize..self.layers.end as usize) {
            return Err(InferenceError::BadRequest(format!(
                "weights for layers {:?} offered to shard {}",
                weights.range, self.layers
            )));
        }
        let served = Arc::new(ServedWeights {
            exec: ShardExecutor::new(weights)?,
            adapter,
        });
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = served;
        // Blocks computed on the old weights are never reused (see `store_prefix`).
        lock(&self.prefix).clear();
        Ok(())
    }

    /// The session a request continues; a new one only for a request from position 0.
    fn session_for(&self, id: &SessionId, start: usize) -> Result<Arc<Mutex<Session>>> {
        let mut sessions = lock(&self.sessions);
        if let Some(s) = sessions.get(id) {
            return Ok(s);
        }
        if start != 0 {
            return Err(InferenceError::CacheGap {
                session: session_hex(id),
                have: 0,
                start,
            });
        }
        let weights = self.weights();
        let session = Session {
            cache: weights.exec.new_cache(),
            weights,
            inputs: InputLog::default(),
            topk: Vec::new(),
            recorded_end: 0,
            seq: 0,
        };
        Ok(sessions.insert(*id, session, self.max_sessions))
    }

    fn existing(&self, id: &SessionId) -> Option<Arc<Mutex<Session>>> {
        lock(&self.sessions).get(id)
    }

    /// Number of positions cached for `session`.
    pub fn cached_len(&self, session: &SessionId) -> usize {
        self.existing(session)
            .map(|s| lock(&s).cache.len())
            .unwrap_or(0)
    }

    /// Number of sessions held.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).map.len()
    }

    /// Drops the session's cached positions at or after `pos` (requests do this implicitly
    /// through their `start_pos`).
    pub fn truncate_session(&self, session: &SessionId, pos: usize) -> Result<()> {
        let Some(state) = self.existing(session) else {
            return Err(InferenceError::UnknownSession(session_hex(session)));
        };
        let mut s = lock(&state);
        s.cache.truncate(pos)?;
        s.inputs.truncate(pos);
        s.topk.truncate(pos);
        Ok(())
    }

    /// Forgets a session.
    pub fn end_session(&self, session: &SessionId) {
        lock(&self.sessions).map.remove(session);
        self.batcher.forget(session);
    }

    /// Runs a request (with no client scope: no prefix caching).
    pub fn handle(&self, req: &ShardRequest) -> Result<ShardResponse> {
        self.handle_scoped(req, None)
    }

    /// Runs a request of the client `scope`: a request from position 0 reuses the
    /// blocks of its input that the client's earlier requests computed, and stores the
    /// ones it computes (see [`crate::prefix_cache`]).
    pub fn handle_scoped(
        &self,
        req: &ShardRequest,
        scope: Option<&PrefixScope>,
    ) -> Result<ShardResponse> {
        let job = self.job_for(req)?;
        let job = match scope {
            Some(scope) => self.prefixed_job(job, scope),
            None => job,
        };
        self.batcher.run(self, job)
    }

    /// Runs a micro-batch of requests of distinct sessions that its sender gathered (a
    /// peer's batched forward call): they are queued at once, so they share the next
    /// step, which starts without waiting for other sessions (see
    /// [`crate::batcher::Batcher`]). Answers each request in order; one request's error
    /// does not fail the others.
    pub fn handle_batch(&self, reqs: &[ShardRequest]) -> Vec<Result<ShardResponse>> {
        let mut answers: Vec<Option<Result<ShardResponse>>> = Vec::with_capacity(reqs.len());
        let mut jobs = Vec::new();
        for req in reqs {
            match self.job_for(req) {
                Ok(job) => {
                    jobs.push(job.gathered());
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let mut ran = self.batcher.run_all(self, jobs).into_iter();
        answers
            .into_iter()
            .map(|a| {
                a.or_else(|| ran.next()).unwrap_or_else(|| {
                    Err(InferenceError::BadRequest("a request was not run".into()))
                })
            })
            .collect()
    }

    /// The job of `req`, after checking it names this shard, on its session's cache.
    fn job_for(&self, req: &ShardRequest) -> Result<Job> {
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
        let session = self.session_for(&req.session, req.start_pos as usize)?;
        Ok(Job::new(req.clone(), session))
    }

    /// Keeps what a request's positions did (their inputs and top-k records, for work
    /// records) once the layers ran them; `out` is their output rows. Returns the output
    /// `(1, seq, hidden)` as sent on (a cheating worker's faked rows in test builds).
    pub(crate) fn record_outputs(
        &self,
        s: &mut Session,
        req: &ShardRequest,
        out: Vec<f32>,
    ) -> Result<Tensor> {
        let start = req.start_pos as usize;
        let exec = &s.weights.exec;
        let width = exec.config().hidden_size;
        let seq = out.len() / width;
        let out = Tensor::from_vec(out, (1, seq, width), &Device::Cpu)?;
        #[cfg(feature = "fault-injection")]
        let out = match self.fault {
            Some(fault) => crate::fault::fake_positions(exec, &out, req, fault)?,
            None => out,
        };
        let hidden_in;
        let input = match &req.input {
            ShardInput::Tokens(t) => ExecInput::Tokens(t),
            ShardInput::Hidden(a) => {
                hidden_in = a.to_tensor()?;
                ExecInput::Hidden(&hidden_in)
            }
        };
        let topk = work_topk(exec, &input, &out)?;
        s.inputs.record(start, &req.input)?;
        s.topk.truncate(start);
        s.topk.extend(topk);
        Ok(out)
    }

    /// The responses to requests whose layers ran (`outs`: each request with its output
    /// rows): on the last shard one LM head over all their positions at once.
    // Positions before `recorded_end` recomputed here (a replay) stay recorded once:
    // the next record starts where the last one ended, so no position is paid twice.
    pub(crate) fn respond<'r>(
        &self,
        exec: &ShardExecutor,
        outs: impl Iterator<Item = (&'r ShardRequest, &'r Tensor, &'r [u32])>,
    ) -> Result<Vec<ShardResponse>> {
        let outs: Vec<_> = outs.collect();
        let response = |req: &ShardRequest, output| ShardResponse {
            session: req.session,
            start_pos: req.start_pos,
            output,
        };
        if !exec.weights().is_last() {
            return outs
                .into_iter()
                .map(|(req, out, _)| {
                    let hidden = Activations::from_tensor(out, req.wire)?;
                    Ok(response(req, ShardOutput::Hidden(hidden)))
                })
                .collect();
        }
        if outs.is_empty() {
            return Ok(Vec::new());
        }
        // The head runs on the positions whose greedy tokens were not reused from the
        // prefix cache.
        let fresh = outs
            .iter()
            .map(|(_, o, reused)| o.narrow(1, reused.len(), o.dim(1)? - reused.len()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let all = Tensor::cat(&fresh, 1)?;
        let logits = exec.head(&all)?;
        let mut first = 0;
        let mut responses = Vec::with_capacity(outs.len());
        for ((req, _, reused), out) in outs.into_iter().zip(&fresh) {
            let seq = out.dim(1)?;
            let rows = logits.narrow(0, first, seq)?;
            first += seq;
            let output = match req.head {
                HeadMode::Argmax => {
                    let mut ids = reused.to_vec();
                    ids.extend(argmax_rows(&rows)?);
                    ShardOutput::Argmax(ids)
                }
                HeadMode::Logits => {
                    ShardOutput::Logits(Activations::from_tensor(&rows, WireDType::F32)?)
                }
            };
            responses.push(response(req, output));
        }
        Ok(responses)
    }

    /// Records the session's work not yet recorded, up to `req.until`: the positions, the
    /// commitment to what the layers did there and the digest of the inputs they ran on
    /// (what a receipt attests; the node's billing signs it). The spot-check material is
    /// archived under the record's id.
    pub fn record_work(&self, req: &WorkRequest) -> Result<RecordedWork> {
        let session = self
            .existing(&req.session)
            .ok_or_else(|| InferenceError::UnknownSession(session_hex(&req.session)))?;
        let mut s = lock(&session);
        let until = (req.until as usize).min(s.topk.len());
        let from = s.recorded_end as usize;
        if from >= until {
            return Err(InferenceError::BadRequest(format!(
                "nothing to record: positions {from}..{until}"
            )));
        }
        let commitment = ActivationCommitment::from_positions(from as u32, &s.topk[from..until]);
        let inputs = s.inputs.prefix(until).ok_or_else(|| {
            InferenceError::BadRequest(format!("inputs of positions 0..{until} not logged"))
        })?;
        let record = WorkRecord {
            model: self.model,
            layers: self.layers,
            session: req.session,
            seq: s.seq,
            position_start: from as u32,
            position_end: until as u32,
            commitment: commitment.hash(),
            input_commitment: inputs.digest(until).unwrap_or_default(),
            adapter: s.weights.adapter,
        };
        s.seq += 1;
        s.recorded_end = until as u32;
        lock(&self.archive).insert(
            record.id(),
            SpotCheckMaterial {
                inputs,
                commitment: commitment.encode(),
            },
        );
        Ok(RecordedWork { record, commitment })
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
