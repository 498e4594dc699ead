//! The provider side of the shard protocol: [`ShardServer`] answers peers' calls with
//! this node's loaded shards (inference and verification calls) and hands training calls
//! to the node's [`TrainingService`]; [`ShardService`] is what the node's event loop asks,
//! before and after the model is loaded. The server also keeps the load figures the node
//! announces in its provider record, and, on a node with a chain, serves each session
//! only as far as its client pays ([`crate::payments`]).

use crate::billing;
use crate::payments::PaymentLedger;
use crate::probe_guard::ForeignProbes;
use crate::protocol::{
    CapacityProbe, InferenceCall, InferenceReply, ShardCall, ShardReply, SignedMaterial,
    TrainingCall, TrainingReply, VerificationCall, VerificationReply,
};
use neuroshard_inference::messages::{ShardOutput, ShardRequest, ShardResponse};
use neuroshard_inference::probe::MAX_PROBE_POSITIONS;
use neuroshard_inference::probe_window::{run_window, unix_ms, window_left, JobPacer};
use neuroshard_inference::shard::Shard;
use neuroshard_network::PeerId;
use neuroshard_primitives::{AccountId, Hash, Keypair, LayerRange, SessionId};
use parity_scale_codec::{DecodeAll, Encode};
use parking_lot::{Mutex, RwLock};
use sp_core::Pair as _;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest capacity-probe window a provider runs (the report must land in the minute).
const MAX_PROBE_WINDOW_MS: u32 = 10_000;

/// Answers Proof-of-Training calls (the node's training board).
pub trait TrainingService: Send + Sync {
    fn answer(&self, call: TrainingCall) -> TrainingReply;
}

/// A node that takes no part in Proof of Training: it holds no pseudo-gradients or
/// adapter snapshots.
pub struct NoTraining;

impl TrainingService for NoTraining {
    fn answer(&self, call: TrainingCall) -> TrainingReply {
        match call {
            TrainingCall::Gradient { .. } => TrainingReply::Gradient(None),
            TrainingCall::Adapter { .. } => TrainingReply::Adapter(None),
        }
    }
}

/// Sessions idle for longer than this no longer count as load.
const SESSION_IDLE: Duration = Duration::from_secs(120);
/// Window over which throughput is measured.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// Load figures a provider announces in its DHT record.
#[derive(Default)]
struct ServeStats {
    sessions: HashMap<SessionId, Instant>,
    /// (when, positions) of recent forward calls.
    recent: VecDeque<(Instant, u32)>,
}

/// Answers shard calls from peers with this node's shards, signing receipts with `key`,
/// and Proof-of-Training calls with `training`.
pub struct ShardServer {
    shards: Vec<Arc<Shard>>,
    key: Keypair,
    stats: Mutex<ServeStats>,
    training: Arc<dyn TrainingService>,
    /// Who paid for what (`None`: sessions are served for free, as by a bench's server).
    payments: Option<Arc<PaymentLedger>>,
    /// Admits capacity probes (`None`: runs every one, as a bench's server or the
    /// `answer_foreign_probes` fault does).
    foreign_probes: Option<Arc<ForeignProbes>>,
    /// Paces probe jobs to a fixed rate (`None`: as fast as the machine goes; set by the
    /// `probe_jobs_per_sec` fault only).
    probe_pace: Option<Arc<JobPacer>>,
}

impl ShardServer {
    /// A server that serves every session for free (see [`Self::with_payments`]).
    pub fn new(shards: Vec<Arc<Shard>>, key: Keypair, training: Arc<dyn TrainingService>) -> Self {
        Self {
            shards,
            key,
            stats: Mutex::new(ServeStats::default()),
            training,
            payments: None,
            foreign_probes: None,
            probe_pace: None,
        }
    }

    /// The server running its capacity probes' jobs at `pace` (a machine of fixed
    /// capacity, for tests; see [`JobPacer`]).
    pub fn with_probe_pace(mut self, pace: Option<JobPacer>) -> Self {
        self.probe_pace = pace.map(Arc::new);
        self
    }

    /// The server refusing to compute other accounts' capacity probes.
    pub fn with_probe_guard(mut self, guard: Arc<ForeignProbes>) -> Self {
        self.foreign_probes = Some(guard);
        self
    }

    /// The server serving each session only as far as its client pays, into `ledger`.
    pub fn with_payments(mut self, ledger: Arc<PaymentLedger>) -> Self {
        self.payments = Some(ledger);
        self
    }

    /// (active sessions, throughput in milli-positions per second over the last minute).
    pub fn stats(&self) -> (u32, u64) {
        let mut stats = self.stats.lock();
        let now = Instant::now();
        stats
            .sessions
            .retain(|_, last| now.duration_since(*last) < SESSION_IDLE);
        while stats
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > THROUGHPUT_WINDOW)
        {
            stats.recent.pop_front();
        }
        let positions: u64 = stats.recent.iter().map(|(_, n)| u64::from(*n)).sum();
        let milli = positions * 1000 / THROUGHPUT_WINDOW.as_secs();
        (stats.sessions.len() as u32, milli)
    }

    fn record_forward(&self, session: SessionId, positions: u32) {
        let mut stats = self.stats.lock();
        let now = Instant::now();
        if stats.sessions.insert(session, now).is_none() {
            tracing::info!(session = %hex::encode(&session[..4]), "serving a new session for a peer");
        }
        stats.recent.push_back((now, positions));
        if stats.recent.len() > 100_000 {
            stats.recent.pop_front();
        }
    }

    fn shard(&self, model: &Hash, layers: LayerRange) -> Result<&Arc<Shard>, String> {
        self.shards
            .iter()
            .find(|s| s.model() == *model && s.layers() == layers)
            .ok_or_else(|| format!("this node does not serve layers {layers} of that model"))
    }

    /// Answers one call from `peer` (on a blocking thread: forwards run the model);
    /// failures become [`ShardReply::Error`].
    pub fn answer(&self, peer: PeerId, call: ShardCall) -> ShardReply {
        let reply = match call {
            ShardCall::Inference(call) => {
                self.answer_inference(peer, call).map(ShardReply::Inference)
            }
            ShardCall::Verification(call) => {
                self.answer_verification(call).map(ShardReply::Verification)
            }
            ShardCall::Training(call) => Ok(ShardReply::Training(self.training.answer(call))),
        };
        reply.unwrap_or_else(ShardReply::Error)
    }

    fn answer_inference(
        &self,
        peer: PeerId,
        call: InferenceCall,
    ) -> Result<InferenceReply, String> {
        match call {
            InferenceCall::Forward(requests) => {
                crate::protocol::check_forward_batch(&requests)?;
                Ok(InferenceReply::Forward(self.forward(peer, &requests)))
            }
            InferenceCall::CapacityProbe(probe) => self.capacity_probe(peer, &probe),
            InferenceCall::Receipt {
                model,
                layers,
                work,
                terms,
            } => {
                let recorded = self
                    .shard(&model, layers)?
                    .record_work(&work)
                    .map_err(|e| e.to_string())?;
                let receipt = billing::sign_work(&self.key, &terms, recorded);
                Ok(InferenceReply::Receipt {
                    body: receipt.body,
                    commitment: receipt.commitment.encode(),
                    worker_signature: receipt.worker_signature,
                })
            }
            InferenceCall::EndSession {
                model,
                layers,
                session,
            } => {
                self.shard(&model, layers)?.end_session(&session);
                self.stats.lock().sessions.remove(&session);
                Ok(InferenceReply::Done)
            }
            InferenceCall::Pay {
                model,
                layers,
                receipts,
            } => match &self.payments {
                Some(ledger) => {
                    ledger.pay(peer, model, layers, receipts)?;
                    Ok(InferenceReply::Done)
                }
                None => Ok(InferenceReply::Done),
            },
        }
    }

    /// Runs a forward call's requests (checked by `check_forward_batch`) as one
    /// micro-batch: each session is admitted, paid for and recorded on its own, as if it
    /// came alone; the answers are in the call's order.
    fn forward(
        &self,
        peer: PeerId,
        requests: &[ShardRequest],
    ) -> Vec<Result<ShardResponse, String>> {
        let mut answers: Vec<Option<Result<ShardResponse, String>>> = Vec::new();
        let mut admitted = Vec::new();
        for req in requests {
            match self.admit(peer, req) {
                Ok(()) => {
                    admitted.push(req.clone());
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let replies: Vec<Result<ShardResponse, String>> =
            match admitted.first().map(|f| self.shard(&f.model, f.layers)) {
                None => Vec::new(),
                Some(Err(e)) => admitted.iter().map(|_| Err(e.clone())).collect(),
                Some(Ok(shard)) => shard
                    .handle_batch(&admitted)
                    .into_iter()
                    .zip(&admitted)
                    .map(|(reply, req)| self.served(req, reply.map_err(|e| e.to_string())))
                    .collect(),
            };
        let mut ran = replies.into_iter();
        answers
            .into_iter()
            .map(|a| {
                a.or_else(|| ran.next())
                    .unwrap_or_else(|| Err("not run".into()))
            })
            .collect()
    }

    /// Whether `peer`'s request may run: this node serves its shard, and its session's
    /// client has paid enough (on a node with a chain).
    fn admit(&self, peer: PeerId, req: &ShardRequest) -> Result<(), String> {
        self.shard(&req.model, req.layers)?;
        if let Some(ledger) = &self.payments {
            let positions = req.input.positions();
            ledger.admit_forward(peer, req.session, req.layers, req.start_pos, positions)?;
        }
        Ok(())
    }

    /// Records a request's answer: the load figures and, on a node with a chain, the
    /// positions computed for its session.
    fn served(
        &self,
        req: &ShardRequest,
        reply: Result<ShardResponse, String>,
    ) -> Result<ShardResponse, String> {
        let reply = reply?;
        let positions = match &reply.output {
            ShardOutput::Argmax(v) => v.len() as u32,
            ShardOutput::Hidden(a) | ShardOutput::Logits(a) => a
                .shape
                .get(a.shape.len().saturating_sub(2))
                .copied()
                .unwrap_or(0),
        };
        self.record_forward(req.session, positions);
        if let Some(ledger) = &self.payments {
            let end = req.start_pos.saturating_add(positions);
            ledger.computed(req.session, req.layers, end);
        }
        Ok(reply)
    }

    /// Runs a capacity probe's window (when admitted, see [`crate::probe_guard`]) and
    /// answers with the jobs finished in it.
    fn capacity_probe(
        &self,
        peer: PeerId,
        probe: &CapacityProbe,
    ) -> Result<InferenceReply, String> {
        let shard = self.shard(&probe.model, probe.layers)?;
        if let Some(guard) = &self.foreign_probes {
            if let Err(why) = guard.admit(probe) {
                tracing::info!(%peer, worker = %probe.worker, minute = probe.minute, "{why}");
                return Err(why);
            }
        }
        let window_ms = probe.window_ms.min(MAX_PROBE_WINDOW_MS);
        let window = window_left(probe.fires_at_ms, window_ms, unix_ms());
        let positions = (probe.positions as usize).clamp(1, MAX_PROBE_POSITIONS);
        let weights = shard.weights();
        let seed = (&probe.input_seed, &probe.nonce);
        let jobs = run_window(
            &weights.exec,
            seed,
            positions,
            window,
            self.probe_pace.as_deref(),
        );
        tracing::info!(
            minute = probe.minute,
            jobs = jobs.len(),
            "capacity probe answered"
        );
        Ok(InferenceReply::CapacityProbe(jobs))
    }

    fn answer_verification(&self, call: VerificationCall) -> Result<VerificationReply, String> {
        match call {
            VerificationCall::Material { body } => {
                if body.worker != AccountId::from(self.key.public()) {
                    return Err("that receipt is not this node's worker's".into());
                }
                let work = billing::work_of(&body).id();
                let found = self.shard(&body.model, body.layers)?.material(&work);
                Ok(VerificationReply::Material(
                    found.map(|m| SignedMaterial::sign(body.id(), m, &self.key)),
                ))
            }
        }
    }
}

/// The node's answers to shard-protocol requests: its [`ShardServer`] once the model is
/// loaded, an error reply before.
#[derive(Clone, Default)]
pub struct ShardService {
    server: Arc<RwLock<Option<Arc<ShardServer>>>>,
    /// Fault injection for tests: answer every forward call and capacity probe from a
    /// peer with an error (a freeloader that stays online, holds the model and
    /// heartbeats, but serves nobody);
    /// its liveness probes fail, so it earns no uptime.
    #[cfg(feature = "fault-injection")]
    refuse_forwards: bool,
    /// Fault injection for tests: relay forward calls to another provider
    /// ([`crate::relay::ProbeRelay`]).
    #[cfg(feature = "fault-injection")]
    relay: crate::relay::ProbeRelay,
    /// Fault injection for tests: milliseconds every reply is held back.
    #[cfg(feature = "fault-injection")]
    reply_delay: Duration,
}

impl ShardService {
    /// The service of a node with the deliberate `faults` of a test build.
    #[allow(unused_variables)]
    pub fn new(faults: &crate::options::ServingOptions) -> Self {
        Self {
            server: Arc::default(),
            #[cfg(feature = "fault-injection")]
            refuse_forwards: faults.refuse_forwards,
            #[cfg(feature = "fault-injection")]
            relay: crate::relay::ProbeRelay::new(faults.relay_probes.clone()),
            #[cfg(feature = "fault-injection")]
            reply_delay: Duration::from_millis(faults.reply_delay_ms),
        }
    }

    /// Gives the `relay_probes` fault the network to relay through (no-op otherwise).
    #[allow(unused_variables)]
    pub fn attach_network(&self, net: &crate::ShardNetwork) {
        #[cfg(feature = "fault-injection")]
        self.relay.attach(net.clone());
    }

    /// The reply to a peer that has too many calls running here.
    pub fn busy() -> Vec<u8> {
        ShardReply::Error("busy: too many calls from this peer".into()).encode()
    }

    /// Starts answering with `server`.
    pub fn serve(&self, server: Arc<ShardServer>) {
        *self.server.write() = Some(server);
    }

    /// Answers the encoded call `data` from `peer` (`None`: undecodable, the caller
    /// penalises the sender). Forwards run the model, so the answer is computed on a
    /// blocking thread.
    pub async fn answer(&self, peer: PeerId, data: Vec<u8>) -> Option<Vec<u8>> {
        let call = ShardCall::decode_all(&mut &data[..]).ok()?;
        #[cfg(feature = "fault-injection")]
        if self.refuse_forwards
            && matches!(
                call,
                ShardCall::Inference(InferenceCall::Forward(_) | InferenceCall::CapacityProbe(_))
            )
        {
            return Some(ShardReply::Error("busy".into()).encode());
        }
        #[cfg(feature = "fault-injection")]
        if let Some(reply) = self.relay.relay(&call).await {
            return Some(reply);
        }
        let server = self.server.read().clone();
        let Some(server) = server else {
            return Some(ShardReply::Error("this node serves no shards (yet)".into()).encode());
        };
        let reply = tokio::task::spawn_blocking(move || server.answer(peer, call).encode())
            .await
            .ok();
        #[cfg(feature = "fault-injection")]
        tokio::time::sleep(self.reply_delay).await;
        reply
    }
}
