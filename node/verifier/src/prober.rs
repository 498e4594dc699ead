//! The validator's capacity prober: the serving half of every worker's minute of uptime
//! (see `ponw::liveness`). Each minute the chain draws, per registered worker, the
//! validator that probes it, one of its announced shards and an input seed. This node
//! prepares the probes of the workers drawn to it (the chain's `probe.positions`,
//! prefill-sized, positions 0.. of a fresh session, as any client would send), then fires
//! them all at the minute's probe instant (`ponw::probe_instant_ms`, the same for every
//! validator and worker) and times each answer. The time less the worker's path round
//! trip (its last libp2p ping, at most [`MAX_RTT_ALLOWANCE`], so delaying pings buys
//! little) gives the throughput the worker proved, in layer-positions per second; an
//! answer later than its deadline (the worker's advertised throughput, at least
//! [`floor_throughput`], plus the round trip and `probe.deadline_slack_ms`) fails.
//!
//! Only a sample of the answers (`probe.sample_permill`, drawn by this node after the
//! answer is in, so the worker cannot know which) is re-run and compared with the spot
//! checks' tolerance (`neuroshard_inference::probe`); the others are checked for shape.
//! A worker that refuses, cannot be reached, is late or answers a sampled probe wrong is
//! reported as failed and earns nothing for the minute. One `report_liveness` per minute
//! carries every answered worker with its throughput.
//!
//! A worker that is this node itself (a sole validator, as in `dev` mode) is probed
//! through its own shard.

use crate::spot_checker::SpotChecker;
use neuroshard_client::hex_hash;
use neuroshard_inference::messages::{ShardInput, ShardOutput, ShardRequest};
use neuroshard_inference::probe::{check_probe, probe_input_for, probe_request};
use neuroshard_inference::shard::ServedWeights;
use neuroshard_inference::spot_check::CheckOutcome;
use neuroshard_network::PeerId;
use neuroshard_primitives::{AccountId, Call, Hash, PonwCall, SessionId};
use neuroshard_runtime::ponw::{self, ProbeParams};
use neuroshard_runtime::{training, Runtime};
use neuroshard_serving::protocol::{ask, InferenceCall, InferenceReply, ShardReply};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Most of a worker's round trip taken off its answer's time.
pub const MAX_RTT_ALLOWANCE: Duration = Duration::from_secs(1);
/// Longest deadline of a probe (the report must still land in the minute).
const MAX_DEADLINE: Duration = Duration::from_secs(15);

/// The lowest throughput a deadline assumes (a worker advertising less, an idle one, is
/// given the time this needs): a thousandth of the reference.
pub fn floor_throughput(p: &ProbeParams) -> u64 {
    (p.reference_throughput / 1000).max(1)
}

/// A probe ready to fire.
struct Prepared {
    task: ponw::ProbeTask,
    exec: Arc<ServedWeights>,
    input: ShardInput,
    request: ShardRequest,
    /// The worker's peers and the round trip allowed for them.
    peers: Vec<PeerId>,
    rtt: Duration,
    deadline: Duration,
}

/// Runs until `shutdown` turns true.
pub async fn run(checker: Arc<SpotChecker>, mut shutdown: watch::Receiver<bool>) {
    // (minute, worker) probes already reported (in the pool or a block).
    let mut reported: HashSet<(u64, AccountId)> = HashSet::new();
    loop {
        if !checker.context().chain.wait_half_slot(&mut shutdown).await {
            return;
        }
        let (tasks, params) = match due_tasks(&checker) {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "prober could not read the chain");
                continue;
            }
        };
        let tasks: Vec<_> = tasks
            .into_iter()
            .filter(|(t, _)| !reported.contains(&(t.minute, t.worker.clone())))
            .collect();
        let Some((minute, fires_at)) = tasks.first().map(|(t, _)| (t.minute, t.fires_at_ms)) else {
            continue;
        };
        reported.retain(|(m, _)| *m == minute);
        let (mut answered, mut failed) = (Vec::new(), Vec::new());
        let mut ready = Vec::new();
        for (task, adapter) in tasks {
            reported.insert((minute, task.worker.clone()));
            match prepare(&checker, task.clone(), adapter, &params).await {
                Ok(p) => ready.push(p),
                Err(why) => {
                    info!(worker = %task.worker, minute, reason = %why, "capacity probe not sent");
                    failed.push(task.worker);
                }
            }
        }
        if !wait_until(fires_at, &mut shutdown).await {
            return;
        }
        for (worker, outcome) in fire_all(&checker, ready, &params).await {
            match outcome {
                Ok(throughput) => answered.push((worker, throughput)),
                Err(why) => {
                    info!(%worker, minute, reason = %why, "capacity probe failed");
                    failed.push(worker);
                }
            }
        }
        submit(&checker, minute, answered, failed);
    }
}

fn submit(
    checker: &SpotChecker,
    minute: u64,
    answered: Vec<(AccountId, u64)>,
    failed: Vec<AccountId>,
) {
    let throughputs: Vec<u64> = answered.iter().map(|(_, t)| *t).collect();
    let missed = failed.len();
    let call = Call::Ponw(PonwCall::ReportLiveness {
        minute,
        answered,
        failed,
    });
    let ctx = checker.context();
    match ctx.chain.sign_and_submit(&ctx.key, call) {
        Ok(hash) => {
            info!(minute, ?throughputs, failed = missed, hash = %hex_hash(&hash), "liveness report submitted")
        }
        Err(e) => warn!(minute, error = %format!("{e:#}"), "liveness report not submitted"),
    }
}

/// Sleeps until Unix millisecond `at`; false on shutdown.
async fn wait_until(at: u64, shutdown: &mut watch::Receiver<bool>) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let wait = Duration::from_millis(at.saturating_sub(now));
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.changed() => false,
    }
}

/// This node's probes of the minute the next block falls in, each with the adapter
/// version the chain adopted for its layers (what an honest worker serves), and the
/// chain's probe parameters.
#[allow(clippy::type_complexity)]
fn due_tasks(
    checker: &SpotChecker,
) -> anyhow::Result<(Vec<(ponw::ProbeTask, Option<Hash>)>, ProbeParams)> {
    let ctx = checker.context();
    let minute = ctx.chain.next_block_minute()?;
    ctx.chain.with_best_state(|state, _| {
        let validators = Runtime::validators(state)?;
        let mut out = Vec::new();
        for task in ponw::probe_tasks(state, &validators, checker.account())? {
            if task.minute != minute {
                continue;
            }
            let adapter = training::adopted(state, ctx.model, task.layers)?;
            out.push((task, adapter));
        }
        Ok((out, ponw::params(state)?.probe))
    })
}

/// Builds one probe (input, request, the executor to check it with, the worker's peers,
/// round trip and deadline) before the instant, so firing costs nothing more.
async fn prepare(
    checker: &Arc<SpotChecker>,
    task: ponw::ProbeTask,
    adapter: Option<Hash>,
    params: &ProbeParams,
) -> Result<Prepared, String> {
    let ctx = checker.context();
    let snapshot = checker
        .snapshot_of(task.layers, adapter, &task.worker)
        .await
        .map_err(|e| format!("no adapter snapshot to re-run with: {e:#}"))?;
    let exec = checker
        .executor(task.layers, adapter, snapshot.as_ref())
        .map_err(|e| format!("this node cannot run the layers: {e:#}"))?;
    let input = probe_input_for(&exec.exec, &task.input_seed, task.positions as usize)
        .map_err(|e| e.to_string())?;
    let session: SessionId = rand::random();
    let request = probe_request(ctx.model, session, task.layers, input.clone());
    let work = u64::from(task.positions) * u64::from(task.layers.len());
    let (peers, rtt, advertised) = if task.worker == *checker.account() {
        (Vec::new(), Duration::ZERO, 0)
    } else {
        checker
            .route_to(&task.worker, task.layers)
            .map_err(|e| format!("{e:#}"))?
    };
    let rtt = rtt.min(MAX_RTT_ALLOWANCE);
    let speed = advertised.max(floor_throughput(params));
    let compute = Duration::from_millis(work.saturating_mul(1000) / speed);
    let slack = Duration::from_millis(u64::from(params.deadline_slack_ms));
    let deadline = (compute + rtt + slack).min(MAX_DEADLINE);
    Ok(Prepared {
        task,
        exec,
        input,
        request,
        peers,
        rtt,
        deadline,
    })
}

/// Fires every prepared probe at once; then checks the answers (a sample re-run) and
/// returns each worker's proven throughput or why it failed.
async fn fire_all(
    checker: &Arc<SpotChecker>,
    ready: Vec<Prepared>,
    params: &ProbeParams,
) -> Vec<(AccountId, Result<u64, String>)> {
    let mut running = tokio::task::JoinSet::new();
    for (i, p) in ready.iter().enumerate() {
        let (checker, request, peers, deadline) = (
            checker.clone(),
            p.request.clone(),
            p.peers.clone(),
            p.deadline,
        );
        let own = p.task.worker == *checker.account();
        let layers = p.task.layers;
        running.spawn(async move {
            let started = Instant::now();
            let answer = if own {
                local_answer(&checker, layers, request).await
            } else {
                remote_answer(&checker, &peers, request, deadline).await
            };
            (i, answer.map(|out| (out, started.elapsed())))
        });
    }
    let mut answers: Vec<Option<Result<(ShardOutput, Duration), String>>> =
        ready.iter().map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        if let Ok((i, answer)) = joined {
            answers[i] = Some(answer);
        }
    }
    let mut out = Vec::new();
    for (p, answer) in ready.into_iter().zip(answers) {
        let worker = p.task.worker.clone();
        let outcome = match answer.unwrap_or_else(|| Err("the probe task failed".into())) {
            Ok((output, took)) => judge(p, output, took, params).await,
            Err(why) => Err(why),
        };
        out.push((worker, outcome));
    }
    out
}

/// The throughput an answer proves, once it is in time and (when sampled) right.
async fn judge(
    p: Prepared,
    output: ShardOutput,
    took: Duration,
    params: &ProbeParams,
) -> Result<u64, String> {
    if took > p.deadline {
        return Err(format!(
            "answered in {} ms, after its {} ms deadline",
            took.as_millis(),
            p.deadline.as_millis()
        ));
    }
    let work = u128::from(p.task.positions) * u128::from(p.task.layers.len());
    let net = took.saturating_sub(p.rtt).max(Duration::from_millis(1));
    let throughput = (work * 1_000_000 / net.as_micros().max(1)) as u64;
    let sampled = rand::random::<u32>() % 1_000_000 < params.sample_permill;
    let Prepared { exec, input, .. } = p;
    let verdict = if sampled {
        tokio::task::spawn_blocking(move || check_probe(&exec.exec, &input, &output))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("this node could not re-run the probe: {e}"))?
    } else if well_formed(&output, input.positions(), exec.exec.weights().is_last()) {
        CheckOutcome::Match
    } else {
        CheckOutcome::Mismatch("the answer has the wrong shape".into())
    };
    match verdict {
        CheckOutcome::Match => {
            debug!(throughput, sampled, "capacity probe passed");
            Ok(throughput)
        }
        CheckOutcome::Mismatch(why) => Err(why),
    }
}

/// Whether `output` is the kind and number of positions the probed shard produces.
fn well_formed(output: &ShardOutput, positions: u32, last: bool) -> bool {
    match (output, last) {
        (ShardOutput::Logits(a), true) | (ShardOutput::Hidden(a), false) => {
            a.shape.len() >= 2 && a.shape[a.shape.len() - 2] == positions
        }
        _ => false,
    }
}

/// This node's own answer, from its shard of `layers`.
async fn local_answer(
    checker: &SpotChecker,
    layers: neuroshard_primitives::LayerRange,
    request: ShardRequest,
) -> Result<ShardOutput, String> {
    let shard = checker
        .local_shard(&layers)
        .ok_or("this node does not serve the layers it announced")?
        .clone();
    let session = request.session;
    tokio::task::spawn_blocking(move || {
        let out = shard.handle(&request).map(|r| r.output);
        shard.end_session(&session);
        out
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Sends the probe to the worker's peers (first answer wins, each within `deadline`)
/// and ends the session afterwards.
async fn remote_answer(
    checker: &SpotChecker,
    peers: &[PeerId],
    request: ShardRequest,
    deadline: Duration,
) -> Result<ShardOutput, String> {
    let network = &checker
        .context()
        .net
        .as_ref()
        .ok_or("no network to reach the worker")?
        .network;
    let end = InferenceCall::EndSession {
        model: request.model,
        layers: request.layers,
        session: request.session,
    };
    let call = InferenceCall::Forward(request.clone());
    let mut last = String::from("no peer answered");
    for peer in peers {
        let reply = tokio::time::timeout(deadline, ask(network, *peer, call.clone())).await;
        match reply {
            Ok(Ok(ShardReply::Inference(InferenceReply::Forward(resp))))
                if resp.session == request.session && resp.start_pos == 0 =>
            {
                let _ = ask(network, *peer, end.clone()).await;
                return Ok(resp.output);
            }
            Ok(Ok(_)) => last = "the reply does not answer the request".into(),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = format!("no answer within {} ms", deadline.as_millis()),
        }
    }
    Err(last)
}
