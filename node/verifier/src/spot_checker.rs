//! The validator's spot checker: watches the chain's pending spot checks and answers the
//! ones the chain assigned to this node (`ponw::spot_checks` draws each check's checker
//! from a block's randomness after the receipt was included, and hands a failing verdict
//! to an independently drawn validator to confirm). For each it gets the worker's spot-check material —
//! from this node's own shards when the worker is this node, otherwise over the network
//! from the worker's announced peers — re-runs the receipt's layers on the committed
//! inputs (`neuroshard_inference::spot_check::check_work`) and submits the verdict.
//! A receipt made with a trained adapter is re-run with that adapter version merged in
//! (its snapshot from this node's training board or from the worker's peers).
//!
//! A worker that cannot produce the material (or only material its statement does not
//! sign) after [`NO_ANSWER_AFTER`] tries gets a `NoAnswer` verdict. A check this node
//! cannot run (no network to reach a remote worker, its own failure to load the layers)
//! is left alone: at its deadline the chain hands it to another drawn checker.
//!
//! The executors it builds for layers and adapter versions it does not serve (and the
//! peer lookup) also serve the validator's liveness prober ([`crate::prober`]).

use crate::verdict::{verdict_of, Verdict};
use anyhow::Context;
use neuroshard_client::hex_hash;
use neuroshard_inference::shard::{ServedWeights, Shard};
use neuroshard_inference::spot_check::recompute;
use neuroshard_inference::ShardExecutor;
use neuroshard_network::PeerId;
use neuroshard_primitives::{
    AccountId, Call, Hash, LayerRange, PonwCall, ReceiptBody, SpotCheckEvidence, SpotCheckVerdict,
};
use neuroshard_runtime::ponw;
use neuroshard_serving::billing::work_of;
use neuroshard_serving::protocol::{fetch_material, SignedMaterial};
use neuroshard_trainer::{adapter_weights, TrainingContext};
use neuroshard_training::AdapterSnapshot;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// Failed attempts to get a remote worker's material before the verdict is `NoAnswer`.
pub const NO_ANSWER_AFTER: u32 = 3;

/// Executors built for checks, by (layers, adapter version).
type Executors = HashMap<(LayerRange, Option<Hash>), Arc<ServedWeights>>;

/// Most executors kept (each holds its layers' weights; adapter ones in f32).
const EXECUTORS_KEPT: usize = 8;

/// See the module docs.
pub struct SpotChecker {
    /// The chain, the node's key, the base model, the network and the training board.
    ctx: TrainingContext,
    me: AccountId,
    /// This node's shards: its own receipts' material and ready executors.
    local: Vec<Arc<Shard>>,
    /// Executors for layers (or adapter versions) this node does not serve, built on
    /// first use.
    loaded: Mutex<Executors>,
    /// `--fault-false-mismatch`: answer every assigned check with a false `Mismatch`.
    #[cfg(feature = "fault-injection")]
    pub false_mismatch: Option<crate::FalseMismatch>,
}

impl SpotChecker {
    pub fn new(ctx: TrainingContext, local: Vec<Arc<Shard>>) -> Self {
        Self {
            me: ctx.account(),
            ctx,
            local,
            loaded: Mutex::new(HashMap::new()),
            #[cfg(feature = "fault-injection")]
            false_mismatch: None,
        }
    }

    pub(crate) fn local_shard(&self, layers: &LayerRange) -> Option<&Arc<Shard>> {
        self.local.iter().find(|s| s.layers() == *layers)
    }

    /// An executor for `layers` with adapter version `adapter` (`snapshot`: that
    /// version's values, when it names one): this node's own shard when it serves exactly
    /// that, otherwise one built from the base model and kept for later checks.
    pub(crate) fn executor(
        &self,
        layers: LayerRange,
        adapter: Option<Hash>,
        snapshot: Option<&AdapterSnapshot>,
    ) -> anyhow::Result<Arc<ServedWeights>> {
        if let Some(shard) = self.local_shard(&layers) {
            let served = shard.weights();
            if served.adapter == adapter {
                return Ok(served);
            }
        }
        let key = (layers, adapter);
        if let Some(exec) = self.loaded.lock().get(&key) {
            return Ok(exec.clone());
        }
        let weights = match (adapter, snapshot) {
            (None, _) => self
                .ctx
                .base
                .slice(layers.start as usize..layers.end as usize)?,
            (Some(_), Some(s)) => {
                let layout = self.ctx.layout(layers)?;
                adapter_weights(&self.ctx.base, &layout, layers, s)?
            }
            (Some(v), None) => anyhow::bail!("no snapshot of adapter {}", hex_hash(&v)),
        };
        let exec = Arc::new(ServedWeights {
            exec: ShardExecutor::new(weights)?,
            adapter,
        });
        let mut loaded = self.loaded.lock();
        if loaded.len() >= EXECUTORS_KEPT {
            loaded.clear();
        }
        loaded.insert(key, exec.clone());
        Ok(exec)
    }

    /// The snapshot of adapter version `adapter` of `layers`, when it names one (from
    /// this node's board or from peers, `worker`'s first).
    pub(crate) async fn snapshot_of(
        &self,
        layers: LayerRange,
        adapter: Option<Hash>,
        worker: &AccountId,
    ) -> anyhow::Result<Option<AdapterSnapshot>> {
        match adapter {
            Some(version) => Ok(Some(
                self.ctx.snapshot(layers, &version, Some(worker)).await?,
            )),
            None => Ok(None),
        }
    }

    /// Re-runs `body` from the worker's `signed` material on an executor for its layers
    /// and adapter version; the verdict and its evidence.
    fn run_check(
        &self,
        body: &ReceiptBody,
        signed: &SignedMaterial,
        snapshot: Option<AdapterSnapshot>,
    ) -> anyhow::Result<Verdict> {
        let exec = self.executor(body.layers, body.adapter, snapshot.as_ref())?;
        let rerun = recompute(&exec.exec, &work_of(body), &signed.material)?;
        Ok(verdict_of(body, signed, rerun))
    }

    /// The peers bound to `worker`'s account in the provider directory.
    pub(crate) fn peers_of(&self, worker: &AccountId) -> anyhow::Result<Vec<PeerId>> {
        let net = self
            .ctx
            .net
            .as_ref()
            .context("no network to reach the worker")?;
        let peers: Vec<_> = net
            .directory
            .snapshot()
            .into_iter()
            .filter(|p| p.account == *worker)
            .map(|p| p.peer)
            .collect();
        anyhow::ensure!(!peers.is_empty(), "the worker announces no peer");
        Ok(peers)
    }

    /// The peers of `worker` serving `layers`, the shortest round trip to them (last
    /// ping) and the highest throughput they advertise, in layer-positions per second.
    pub(crate) fn route_to(
        &self,
        worker: &AccountId,
        layers: LayerRange,
    ) -> anyhow::Result<(Vec<PeerId>, std::time::Duration, u64)> {
        let net = self
            .ctx
            .net
            .as_ref()
            .context("no network to reach the worker")?;
        let views: Vec<_> = net
            .directory
            .snapshot()
            .into_iter()
            .filter(|p| p.account == *worker)
            .collect();
        anyhow::ensure!(!views.is_empty(), "the worker announces no peer");
        let rtt_ms = views
            .iter()
            .filter_map(|p| p.rtt_ms)
            .fold(f64::INFINITY, f64::min);
        let rtt = if rtt_ms.is_finite() {
            std::time::Duration::from_secs_f64(rtt_ms.max(0.0) / 1000.0)
        } else {
            std::time::Duration::ZERO
        };
        let advertised = views
            .iter()
            .map(|p| p.throughput_milli.saturating_mul(u64::from(layers.len())) / 1000)
            .max()
            .unwrap_or(0);
        Ok((views.into_iter().map(|p| p.peer).collect(), rtt, advertised))
    }

    pub(crate) fn context(&self) -> &TrainingContext {
        &self.ctx
    }

    pub(crate) fn account(&self) -> &AccountId {
        &self.me
    }

    /// The worker's material for the work `body` attests: `Ok(None)` when every peer
    /// of the worker that answered says it has none, `Err` when none could be asked
    /// (network failure, no known peer). Every peer asked is bound to the worker's
    /// account (the directory believes no other), and one peer's "none" does not
    /// outweigh another's material: a worker running several nodes is asked on each.
    async fn material(&self, body: &ReceiptBody) -> anyhow::Result<Option<SignedMaterial>> {
        if body.worker == self.me {
            let work = work_of(body).id();
            return Ok(self
                .local_shard(&body.layers)
                .and_then(|s| s.material(&work))
                .map(|m| SignedMaterial::sign(body.id(), m, &self.ctx.key)));
        }
        let peers = self.peers_of(&body.worker)?;
        let net = self.ctx.net.as_ref().context("no network")?;
        let (mut answered, mut last) = (false, None);
        for peer in peers {
            match fetch_material(&net.network, peer, body).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => answered = true,
                Err(e) => last = Some(e),
            }
        }
        match (answered, last) {
            (true, _) => Ok(None),
            (false, last) => Err(last.unwrap_or_else(|| anyhow::anyhow!("no peer answered"))),
        }
    }

    /// Decides one check: `None` when no verdict can be given yet.
    async fn decide(
        self: &Arc<Self>,
        id: Hash,
        body: ReceiptBody,
        failures: &mut HashMap<Hash, u32>,
    ) -> Option<Verdict> {
        let no_answer = |why: &str| Verdict {
            verdict: SpotCheckVerdict::NoAnswer,
            evidence: SpotCheckEvidence::None,
            why: why.into(),
        };
        let fetched = async {
            let material = self.material(&body).await?;
            let snapshot = self
                .snapshot_of(body.layers, body.adapter, &body.worker)
                .await?;
            anyhow::Ok(material.map(|m| (m, snapshot)))
        };
        let (material, snapshot) = match fetched.await {
            Ok(Some(m)) => m,
            Ok(None) => return Some(no_answer("the worker has no material")),
            Err(e) => {
                let tries = failures.entry(id).or_default();
                *tries += 1;
                warn!(receipt = %hex_hash(&id), tries = *tries, error = %format!("{e:#}"), "spot-check material not fetched");
                let remote_failure = self.ctx.net.is_some() && *tries >= NO_ANSWER_AFTER;
                return remote_failure.then(|| no_answer("the worker's material was not fetched"));
            }
        };
        let checker = self.clone();
        let outcome =
            tokio::task::spawn_blocking(move || checker.run_check(&body, &material, snapshot))
                .await;
        match outcome {
            Ok(Ok(verdict)) => {
                if verdict.verdict != SpotCheckVerdict::Match {
                    warn!(receipt = %hex_hash(&id), verdict = verdict.verdict.as_str(), reason = %verdict.why, "spot check failed");
                }
                Some(verdict)
            }
            Ok(Err(e)) => {
                warn!(receipt = %hex_hash(&id), error = %format!("{e:#}"), "could not run the spot check");
                None
            }
            Err(e) => {
                warn!(receipt = %hex_hash(&id), error = %e, "spot check panicked");
                None
            }
        }
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Assignments answered (verdict in the pool or a block), by (receipt, round), and
        // fetch failures so far.
        let mut answered: std::collections::HashSet<(Hash, usize)> = Default::default();
        let mut failures: HashMap<Hash, u32> = HashMap::new();
        loop {
            if !self.ctx.chain.wait_half_slot(&mut shutdown).await {
                return;
            }
            let read = self
                .ctx
                .chain
                .with_best_state(|state, _| ponw::spot_checks::all_pending(state));
            let pending = match read {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "spot checker could not read the chain");
                    continue;
                }
            };
            answered
                .retain(|(id, round)| pending.iter().any(|(p, c)| p == id && c.round() == *round));
            failures.retain(|id, _| pending.iter().any(|(p, _)| p == id));
            for (id, check) in pending {
                let round = check.round();
                if check.checker != self.me || answered.contains(&(id, round)) {
                    continue;
                }
                #[cfg(feature = "fault-injection")]
                let body = check.body.clone();
                let Some(verdict) = self.decide(id, check.body, &mut failures).await else {
                    continue;
                };
                #[cfg(feature = "fault-injection")]
                let verdict = match self.false_mismatch {
                    Some(fault) => fault.falsify(&body, &self.ctx.key, verdict),
                    None => verdict,
                };
                let Verdict {
                    verdict, evidence, ..
                } = verdict;
                let call = Call::Ponw(PonwCall::SubmitSpotCheck {
                    receipt: id,
                    verdict,
                    evidence,
                });
                #[cfg(feature = "fault-injection")]
                let submitted = match self.false_mismatch {
                    Some(_) => self
                        .ctx
                        .chain
                        .sign_and_submit_unchecked(&self.ctx.key, call),
                    None => self.ctx.chain.sign_and_submit(&self.ctx.key, call),
                };
                #[cfg(not(feature = "fault-injection"))]
                let submitted = self.ctx.chain.sign_and_submit(&self.ctx.key, call);
                match submitted {
                    Ok(_) => {
                        info!(receipt = %hex_hash(&id), verdict = verdict.as_str(), "spot-check verdict submitted");
                        answered.insert((id, round));
                    }
                    Err(e) => {
                        warn!(receipt = %hex_hash(&id), error = %format!("{e:#}"), "spot-check verdict not submitted")
                    }
                }
            }
        }
    }
}
