//! Continuous batching of a shard's requests: every caller of [`crate::Shard::handle`]
//! (the node's own generations through in-process transports, and peers' `Forward` calls
//! through the shard server) submits its request as a job and waits for its session's
//! output. Each step runs all waiting sessions' pending positions — decode tokens,
//! speculative verification positions, chunks of prefills — through one pass over each
//! layer's weights ([`ShardExecutor::forward_rows`], the matrix products with `m` = all
//! positions) and one batched LM head, and attention per session over its own cache.
//! Sessions join and leave between steps.
//!
//! No thread is dedicated to it: the step is run by one of the waiting callers, the
//! leader, which keeps running steps until its own job is done and then hands the role
//! to another waiting caller (flat combining). While the leader runs a step the queue
//! stays open, so requests that arrive then join the next step.
//!
//! A step takes at most [`Batcher::max_positions`] positions: first the small jobs
//! (decode steps and speculative verifications of up to [`SMALL_JOB`] positions) in
//! arrival order, then chunks of the larger ones (prefills) in what is left, so a long
//! prompt is cut into chunks and does not stall the others' decoding. One session has at
//! most one job in a step, and jobs of a session run in arrival order; only sessions
//! started on the same weights (see [`crate::shard::ServedWeights`]) share a step.
//!
//! Before a step, the leader waits (at most [`GATHER`]) for the sessions of the last few
//! steps to come back with their next request, so that decoding sessions stay in one
//! batch instead of splitting into a batch per arrival (sessions split over two steps
//! merge again at the next wait); a session that ends ([`Batcher::forget`]) is not
//! waited for. A lone session never waits: it is the only one expected.
//!
//! Exactness: the kernels compute each row by the same operations whatever `m`, and
//! attention reads only the row's own session, so a session's outputs are the same bits
//! batched or alone, and its commitments and spot checks are unchanged by batching.

use crate::error::{InferenceError, Result};
use crate::executor::Segment;
use crate::messages::{HeadMode, ShardRequest, ShardResponse};
use crate::prefix_cache::{PrefixBlock, BLOCK};
use crate::shard::{ServedWeights, Session, Shard};
use neuroshard_primitives::{Hash, SessionId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Jobs of at most this many positions (decode steps, speculative verifications) go into
/// a step before any chunk of a larger one.
pub const SMALL_JOB: usize = 16;
/// Positions one step takes by default (`--max-batch`).
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Longest wait of a step for the previous step's sessions.
pub const GATHER: Duration = Duration::from_millis(10);
/// Sessions that ran in this many of the last steps are waited for.
const RECENT_STEPS: u64 = 4;
/// Longest wait of the node's first stage for sessions queued at its later stages.
pub const MERGE_WAIT: Duration = Duration::from_millis(100);

/// The jobs queued in all the batchers of one node's shards, per session: a stage's
/// leader does not wait for a session queued at another of the node's stages (it is
/// waiting there, often for this very step), except the first stage, where split groups
/// of sessions merge again (see [`Batcher`]).
#[derive(Debug, Default)]
pub struct NodeQueue(Mutex<HashMap<SessionId, usize>>);

impl NodeQueue {
    fn enter(&self, session: SessionId) {
        *lock(&self.0).entry(session).or_default() += 1;
    }

    fn leave(&self, session: &SessionId) {
        let mut map = lock(&self.0);
        if let Some(n) = map.get_mut(session) {
            *n -= 1;
            if *n == 0 {
                map.remove(session);
            }
        }
    }

    fn holds(&self, session: &SessionId) -> bool {
        lock(&self.0).contains_key(session)
    }

    /// Whether no job is queued in the node's batchers.
    pub fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request waiting for (or partly through) the batch.
pub(crate) struct Job {
    pub req: ShardRequest,
    pub session: Arc<Mutex<Session>>,
    pub weights: Arc<ServedWeights>,
    /// A scoped request from position 0: the prefix-cache keys of its input's full
    /// blocks (see [`crate::prefix_cache`]), under which its computed blocks are stored.
    pub prefix_keys: Vec<Hash>,
    /// Blocks of its first positions found in the prefix cache, installed in the
    /// session's KV cache when the job first runs.
    prefix: Mutex<Vec<Arc<PrefixBlock>>>,
    /// Part of a micro-batch its sender gathered (a peer's batched forward call): the
    /// step that takes it does not wait for other sessions.
    gathered: bool,
    progress: Mutex<Progress>,
}

/// How far a job got.
#[derive(Default)]
struct Progress {
    /// Whether the job's input was checked against its session's cache.
    started: bool,
    /// The greedy next tokens of its first positions, reused from the prefix cache.
    reused_argmax: Vec<u32>,
    /// The input rows (f32, position-major), once computed.
    input: Option<Vec<f32>>,
    /// Positions run so far.
    done: usize,
    /// Their output rows.
    out: Vec<f32>,
    result: Option<Result<ShardResponse>>,
}

impl Job {
    pub fn new(req: ShardRequest, session: Arc<Mutex<Session>>) -> Self {
        let weights = lock(&session).weights.clone();
        Self {
            req,
            session,
            weights,
            prefix_keys: Vec::new(),
            prefix: Mutex::default(),
            gathered: false,
            progress: Mutex::default(),
        }
    }

    /// The job as part of a micro-batch its sender gathered.
    pub fn gathered(mut self) -> Self {
        self.gathered = true;
        self
    }

    /// The job with its input rows already computed, `keys` the prefix-cache keys of
    /// their full blocks and `hit` the cached blocks of its first positions: those
    /// positions count as done, with the cached outputs (and greedy tokens).
    pub fn with_prefix(
        mut self,
        rows: Vec<f32>,
        keys: Vec<Hash>,
        hit: Vec<Arc<PrefixBlock>>,
    ) -> Self {
        {
            let progress = self.progress.get_mut().unwrap_or_else(|p| p.into_inner());
            progress.done = hit.len() * BLOCK;
            progress.out = hit.iter().flat_map(|b| b.out.iter().copied()).collect();
            if self.req.head == HeadMode::Argmax && hit.iter().all(|b| b.argmax.is_some()) {
                progress.reused_argmax = hit
                    .iter()
                    .flat_map(|b| b.argmax.iter().flatten().copied())
                    .collect();
            }
            progress.input = Some(rows);
        }
        self.prefix_keys = keys;
        self.prefix = Mutex::new(hit);
        self
    }

    fn finished(&self) -> bool {
        lock(&self.progress).result.is_some()
    }

    fn positions(&self) -> usize {
        self.req.input.positions() as usize
    }

    fn remaining(&self) -> usize {
        self.positions().saturating_sub(lock(&self.progress).done)
    }
}

/// Upper bounds of the buckets of [`BatchFigures::histogram`] (sessions per step); the
/// last bucket takes every larger step.
pub const HISTOGRAM_BOUNDS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Figures of the batcher for `/metrics`.
#[derive(Debug, Default)]
pub struct BatchStats {
    queued: AtomicU64,
    batch_positions: AtomicU64,
    batch_sessions: AtomicU64,
    steps: AtomicU64,
    positions: AtomicU64,
    sessions: AtomicU64,
    peak_positions: AtomicU64,
    peak_sessions: AtomicU64,
    busy_nanos: AtomicU64,
    histogram: [AtomicU64; HISTOGRAM_BOUNDS.len() + 1],
}

/// A snapshot of [`BatchStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchFigures {
    /// Jobs left waiting when the last step started.
    pub queued: u64,
    /// Positions in the last step.
    pub batch_positions: u64,
    /// Sessions in the last step.
    pub batch_sessions: u64,
    /// Steps run.
    pub steps: u64,
    /// Positions run in all steps.
    pub positions: u64,
    /// Most positions in one step.
    pub peak_positions: u64,
    /// Most sessions in one step.
    pub peak_sessions: u64,
    /// Sessions summed over all steps (over `steps`: the mean batch).
    pub sessions: u64,
    /// Nanoseconds spent running steps (the shard's busy time).
    pub busy_nanos: u64,
    /// Steps by sessions in the step: `histogram[i]` counts steps of at most
    /// `HISTOGRAM_BOUNDS[i]` sessions (and more than the bound before); the last entry
    /// counts steps of more than the last bound.
    pub histogram: [u64; HISTOGRAM_BOUNDS.len() + 1],
}

impl BatchFigures {
    /// Adds `other`'s counters to these (the last-step gauges take the larger).
    pub fn add(&mut self, other: &BatchFigures) {
        self.queued += other.queued;
        self.batch_positions = self.batch_positions.max(other.batch_positions);
        self.batch_sessions = self.batch_sessions.max(other.batch_sessions);
        self.steps += other.steps;
        self.positions += other.positions;
        self.peak_positions = self.peak_positions.max(other.peak_positions);
        self.peak_sessions = self.peak_sessions.max(other.peak_sessions);
        self.sessions += other.sessions;
        self.busy_nanos += other.busy_nanos;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram) {
            *a += b;
        }
    }
}

impl BatchStats {
    pub fn figures(&self) -> BatchFigures {
        BatchFigures {
            queued: self.queued.load(Ordering::Relaxed),
            batch_positions: self.batch_positions.load(Ordering::Relaxed),
            batch_sessions: self.batch_sessions.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            positions: self.positions.load(Ordering::Relaxed),
            peak_positions: self.peak_positions.load(Ordering::Relaxed),
            peak_sessions: self.peak_sessions.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
            histogram: std::array::from_fn(|i| self.histogram[i].load(Ordering::Relaxed)),
        }
    }

    /// Counts a step of `sessions` sessions that ran for `took`.
    fn record_step(&self, sessions: usize, took: Duration) {
        let sessions = sessions as u64;
        self.sessions.fetch_add(sessions, Ordering::Relaxed);
        self.busy_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        let bucket = HISTOGRAM_BOUNDS
            .iter()
            .position(|&b| sessions <= b)
            .unwrap_or(HISTOGRAM_BOUNDS.len());
        self.histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a step's leader waits (see [`Batcher::gather`]).
#[derive(Default)]
struct Waiting {
    /// A recent session is between two stages or in its client's turn.
    transit: bool,
    /// On the first stage: a session of a group that split off is queued at a later
    /// stage or on its way back here.
    merge: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Arc<Job>>,
    leader: bool,
    /// Sessions of the last steps with the last step each ran in, expected back with
    /// their next request.
    recent: HashMap<SessionId, u64>,
    /// Steps started.
    step: u64,
}

/// The queue of a shard's requests and the steps that run them.
pub struct Batcher {
    state: Mutex<State>,
    changed: Condvar,
    max_positions: usize,
    stats: BatchStats,
    /// The jobs queued in this node's batchers (shared by its shards' batchers).
    node: Arc<NodeQueue>,
    /// Whether this is the node's first stage (its shard takes tokens), where groups of
    /// sessions merge.
    first: bool,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max_positions", &self.max_positions)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Gives up the leader role when the leader's steps end, even by a panic.
struct Leadership<'a>(&'a Batcher);

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).leader = false;
        self.0.changed.notify_all();
    }
}

impl Batcher {
    /// A batcher taking up to `max_positions` positions per step.
    pub fn new(max_positions: usize) -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            max_positions: max_positions.max(1),
            stats: BatchStats::default(),
            node: Arc::default(),
            first: false,
        }
    }

    /// The same batcher as one of a node's stages: `node` is shared by the batchers of
    /// the node's shards, `first` says whether this one's shard starts the model.
    pub fn linked(mut self, node: Arc<NodeQueue>, first: bool) -> Self {
        self.node = node;
        self.first = first;
        self
    }

    /// The node's queue this batcher is linked to and whether it is its first stage.
    pub fn link(&self) -> (Arc<NodeQueue>, bool) {
        (self.node.clone(), self.first)
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn figures(&self) -> BatchFigures {
        self.stats.figures()
    }

    /// Stops waiting for `session` (it ended).
    pub fn forget(&self, session: &SessionId) {
        if lock(&self.state).recent.remove(session).is_some() {
            self.changed.notify_all();
        }
    }

    /// Queues `job` and returns its response once a step finished it (this thread may
    /// run steps for everyone meanwhile).
    pub(crate) fn run(&self, shard: &Shard, job: Job) -> Result<ShardResponse> {
        self.run_all(shard, vec![job])
            .pop()
            .unwrap_or_else(unanswered)
    }

    /// Queues `jobs` at once (so they can share a step) and returns their responses in
    /// order once steps finished them all (this thread may run steps for everyone
    /// meanwhile).
    pub(crate) fn run_all(&self, shard: &Shard, jobs: Vec<Job>) -> Vec<Result<ShardResponse>> {
        let jobs: Vec<Arc<Job>> = jobs.into_iter().map(Arc::new).collect();
        let all_done = || jobs.iter().all(|j| j.finished());
        let mut state = lock(&self.state);
        for job in &jobs {
            self.node.enter(job.req.session);
            state.queue.push_back(job.clone());
        }
        self.changed.notify_all();
        loop {
            if all_done() {
                return jobs
                    .iter()
                    .map(|j| lock(&j.progress).result.take().unwrap_or_else(unanswered))
                    .collect();
            }
            if !state.leader {
                state.leader = true;
                drop(state);
                let leadership = Leadership(self);
                while !all_done() {
                    self.step(shard);
                }
                drop(leadership);
                state = lock(&self.state);
                continue;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Waits until every recent session has a job queued: at most [`GATHER`] for the
    /// sessions between two stages (or in their client's turn), and on the first stage
    /// at most [`MERGE_WAIT`] for the sessions queued at the node's later stages — also
    /// while those come back through their client's turn (see [`Waiting`]); later
    /// stages do not wait for sessions queued elsewhere on the node.
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let begin = Instant::now();
        let mut merging = HashSet::new();
        loop {
            if state.queue.iter().any(|j| j.gathered) {
                // Its sender formed the micro-batch: the others are in other ones.
                return state;
            }
            let waiting = self.waiting(&state, &mut merging);
            let waited = begin.elapsed();
            let wait = match (waiting.transit, waiting.merge) {
                (true, _) if waited < GATHER => GATHER - waited,
                (_, true) if waited < MERGE_WAIT => (MERGE_WAIT - waited).min(GATHER),
                _ => return state,
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .map(|(s, _)| s)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// What a step's leader waits for among the recent sessions with no job here.
    /// `merging` collects, on the first stage, the sessions seen queued at a later stage
    /// during this wait: the group that split off. They are waited for until they are
    /// back here, through every later stage and their client's turn, where they are
    /// queued nowhere for a moment; waiting only while they were queued elsewhere gave
    /// up exactly then, so the groups never merged (a session that ends is forgotten
    /// and not waited for).
    fn waiting(&self, state: &State, merging: &mut HashSet<SessionId>) -> Waiting {
        let here: HashSet<SessionId> = state.queue.iter().map(|j| j.req.session).collect();
        let mut waiting = Waiting::default();
        for id in state.recent.keys().filter(|id| !here.contains(*id)) {
            if self.node.holds(id) {
                if self.first {
                    merging.insert(*id);
                    waiting.merge = true;
                }
            } else if merging.contains(id) {
                waiting.merge = true;
            } else {
                waiting.transit = true;
            }
        }
        waiting
    }

    /// The jobs of the next step and how many positions each runs.
    fn select(&self) -> Vec<(Arc<Job>, usize)> {
        let mut state = self.gather(lock(&self.state));
        let mut seen = HashSet::new();
        let weights = state.queue.front().map(|j| j.weights.clone());
        // The first job of each session on the step's weights, in arrival order.
        let eligible: Vec<Arc<Job>> = state
            .queue
            .iter()
            .filter(|j| seen.insert(j.req.session))
            .filter(|j| weights.as_ref().is_some_and(|w| Arc::ptr_eq(w, &j.weights)))
            .cloned()
            .collect();
        let mut budget = self.max_positions;
        let mut picked: Vec<(Arc<Job>, usize)> = Vec::new();
        let mut rest = Vec::new();
        // Small jobs whole first, then chunks of the others in what is left.
        for job in eligible {
            let remaining = job.remaining();
            if remaining <= SMALL_JOB.min(budget) {
                budget -= remaining;
                picked.push((job, remaining));
            } else {
                rest.push((job, remaining));
            }
        }
        for (job, remaining) in rest {
            if budget == 0 {
                break;
            }
            let take = remaining.min(budget);
            budget -= take;
            picked.push((job, take));
        }
        state.step += 1;
        let step = state.step;
        for (job, _) in &picked {
            state.recent.insert(job.req.session, step);
        }
        state.recent.retain(|_, at| *at + RECENT_STEPS > step);
        let positions: usize = picked.iter().map(|(_, n)| n).sum();
        let s = &self.stats;
        s.queued
            .store((state.queue.len() - picked.len()) as u64, Ordering::Relaxed);
        s.batch_positions.store(positions as u64, Ordering::Relaxed);
        s.batch_sessions
            .store(picked.len() as u64, Ordering::Relaxed);
        s.steps.fetch_add(1, Ordering::Relaxed);
        s.positions.fetch_add(positions as u64, Ordering::Relaxed);
        s.peak_positions
            .fetch_max(positions as u64, Ordering::Relaxed);
        s.peak_sessions
            .fetch_max(picked.len() as u64, Ordering::Relaxed);
        picked
    }

    /// Runs one step and wakes the callers whose jobs it finished.
    fn step(&self, shard: &Shard) {
        let picked = self.select();
        if !picked.is_empty() {
            let begin = Instant::now();
            run_step(shard, &picked);
            self.stats.record_step(picked.len(), begin.elapsed());
        }
        let mut state = lock(&self.state);
        state.queue.retain(|j| {
            let done = j.finished();
            if done {
                self.node.leave(&j.req.session);
            }
            !done
        });
        self.changed.notify_all();
    }
}

/// The result of a job that finished without one (never: a step sets it).
fn unanswered() -> Result<ShardResponse> {
    Err(InferenceError::BadRequest("a job ended unanswered".into()))
}

/// Sets a job's result.
fn finish(job: &Job, result: Result<ShardResponse>) {
    lock(&job.progress).result = Some(result);
}

/// The input rows of `input` (f32, position-major).
pub(crate) fn input_rows(
    exec: &crate::executor::ShardExecutor,
    input: &crate::messages::ShardInput,
) -> Result<Vec<f32>> {
    match input {
        crate::messages::ShardInput::Tokens(t) => {
            exec.input_rows(crate::executor::ExecInput::Tokens(t))
        }
        crate::messages::ShardInput::Hidden(a) => {
            let hidden = a.to_tensor()?;
            exec.input_rows(crate::executor::ExecInput::Hidden(&hidden))
        }
    }
}

/// The positions a job runs in this step: its input rows `take` from where it got to.
/// The first time, the input is checked against the session's cache (after the cached
/// prefix blocks it reuses are installed there).
fn prepare(job: &Job, session: &mut Session, take: usize) -> Result<(usize, Vec<f32>)> {
    let exec = &job.weights.exec;
    let mut progress = lock(&job.progress);
    if !progress.started {
        if progress.input.is_none() {
            let rows = input_rows(exec, &job.req.input)?;
            let seq = rows.len() / exec.config().hidden_size;
            if seq != job.positions() {
                return Err(InferenceError::BadRequest(format!(
                    "an input of {seq} positions whose shape says {}",
                    job.positions()
                )));
            }
            progress.input = Some(rows);
        }
        let hit = std::mem::take(&mut *lock(&job.prefix));
        crate::prefix_cache::install(&mut session.cache, &hit)?;
        let from = job.req.start_pos as usize + progress.done;
        exec.check_segment(&session.cache, from, job.positions() - progress.done)
            .map_err(|e| with_session(e, &job.req))?;
        progress.started = true;
    }
    let n = exec.config().hidden_size;
    let done = progress.done;
    let rows = progress.input.as_ref().map_or(&[][..], |v| v.as_slice());
    Ok((
        job.req.start_pos as usize + done,
        rows[done * n..(done + take) * n].to_vec(),
    ))
}

fn with_session(e: InferenceError, req: &ShardRequest) -> InferenceError {
    match e {
        InferenceError::CacheGap { have, start, .. } => InferenceError::CacheGap {
            session: crate::messages::session_hex(&req.session),
            have,
            start,
        },
        e => e,
    }
}

/// Runs the picked jobs' positions through the layers in one pass and finishes the jobs
/// that are complete.
fn run_step(shard: &Shard, picked: &[(Arc<Job>, usize)]) {
    let exec = &picked[0].0.weights.exec;
    let mut guards: Vec<MutexGuard<'_, Session>> =
        picked.iter().map(|(j, _)| lock(&j.session)).collect();
    let mut x = Vec::new();
    let mut live = Vec::new();
    let mut starts = Vec::new();
    for (i, ((job, take), guard)) in picked.iter().zip(guards.iter_mut()).enumerate() {
        match prepare(job, guard, *take) {
            Ok((start, rows)) => {
                x.extend(rows);
                live.push(i);
                starts.push(start);
            }
            Err(e) => finish(job, Err(e)),
        }
    }
    if live.is_empty() {
        return;
    }
    let mut segments: Vec<Segment<'_>> = Vec::with_capacity(live.len());
    let mut rest: &mut [MutexGuard<'_, Session>] = &mut guards;
    let mut taken = 0;
    for (&i, &start) in live.iter().zip(&starts) {
        let (_, tail) = rest.split_at_mut(i - taken);
        let (guard, tail) = tail.split_at_mut(1);
        segments.push(Segment {
            cache: &mut guard[0].cache,
            start,
            seq: picked[i].1,
        });
        rest = tail;
        taken = i + 1;
    }
    if let Err(e) = exec.forward_rows(&mut segments, &mut x) {
        let reason = e.to_string();
        for &i in &live {
            finish(
                &picked[i].0,
                Err(InferenceError::BadRequest(reason.clone())),
            );
        }
        return;
    }
    drop(segments);
    let n = exec.config().hidden_size;
    let mut complete = Vec::new();
    let mut offset = 0;
    for &i in &live {
        let (job, take) = &picked[i];
        let mut progress = lock(&job.progress);
        progress
            .out
            .extend_from_slice(&x[offset * n..(offset + take) * n]);
        progress.done += take;
        offset += take;
        if progress.done == job.positions() {
            complete.push(i);
        }
    }
    finish_complete(shard, exec, picked, &complete, &mut guards);
}

/// Records the complete jobs' outputs in their sessions and answers them (one LM head
/// over all of them on the last shard).
fn finish_complete(
    shard: &Shard,
    exec: &crate::executor::ShardExecutor,
    picked: &[(Arc<Job>, usize)],
    complete: &[usize],
    guards: &mut [MutexGuard<'_, Session>],
) {
    let mut outs = Vec::with_capacity(complete.len());
    for &i in complete {
        let job = &picked[i].0;
        let (out, reused) = {
            let mut progress = lock(&job.progress);
            let reused = std::mem::take(&mut progress.reused_argmax);
            (std::mem::take(&mut progress.out), reused)
        };
        // The rows a scoped prefill computed, for the prefix cache.
        let stored = (!job.prefix_keys.is_empty()).then(|| out.clone());
        match shard.record_outputs(&mut guards[i], &job.req, out) {
            Ok(out) => outs.push((i, out, reused, stored)),
            Err(e) => finish(job, Err(e)),
        }
    }
    let responses = shard.respond(
        exec,
        outs.iter()
            .map(|(i, out, reused, _)| (&picked[*i].0.req, out, reused.as_slice())),
    );
    match responses {
        Ok(responses) => {
            for ((i, _, _, stored), response) in outs.iter().zip(responses) {
                if let Some(rows) = stored {
                    shard.store_prefix(&picked[*i].0, &guards[*i], rows, &response);
                }
                finish(&picked[*i].0, Ok(response));
            }
        }
        Err(e) => {
            let reason = e.to_string();
            for (i, ..) in &outs {
                finish(
                    &picked[*i].0,
                    Err(InferenceError::BadRequest(reason.clone())),
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
