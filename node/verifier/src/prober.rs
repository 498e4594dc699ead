//! The validator's capacity prober: the serving half of every worker's minute of uptime
//! (see `ponw::liveness`). Each minute the chain draws, per registered worker, the
//! validator that probes it, one of its announced shards and an input seed. This node
//! prepares the probes of the workers drawn to it (signed, each with a fresh nonce) and
//! fires them all at the minute's probe instant (`ponw::probe_instant_ms`, the same for
//! every validator and worker). A worker runs as many prefill-sized jobs
//! (`probe.positions`) as it can in the chain's `probe.window_ms`
//! (`neuroshard_inference::probe_window`) and answers with their commitments; it proves
//! the jobs' layer-positions over the window, per second. The answer must arrive within
//! the window plus the jobs in flight at its end at the worker's advertised throughput (at least
//! [`floor_throughput`]), its path's round trip (its last libp2p ping, at most
//! [`MAX_RTT_ALLOWANCE`]) and `probe.deadline_slack_ms`: a worker behind a slow path
//! does as much work in the window as a near one, so it earns as much.
//!
//! A sample of each answer's jobs (`probe.sample_permill`, at least [`MIN_SAMPLES`],
//! drawn by this node after the answer is in) is re-run and compared with the spot
//! checks' tolerance. A worker that refuses, cannot be reached, is late or answers a
//! sampled job wrong is reported as failed and earns nothing for the minute. One
//! `report_liveness` per minute carries every answered worker with its throughput.
//!
//! A worker that is this node itself (a sole validator, as in `dev` mode) is probed
//! through its own shard.

use crate::spot_checker::SpotChecker;
use neuroshard_client::hex_hash;
use neuroshard_inference::commitment::ActivationCommitment;
use neuroshard_inference::probe_window::{
    expected_commitment, run_window, unix_ms, window_left, MAX_JOBS, STREAMS,
};
use neuroshard_inference::shard::ServedWeights;
use neuroshard_network::PeerId;
use neuroshard_primitives::{crypto, AccountId, Call, Hash, PonwCall};
use neuroshard_runtime::ponw::{self, ProbeParams};
use neuroshard_runtime::{training, Runtime};
use neuroshard_serving::protocol::{ask, CapacityProbe, InferenceCall, InferenceReply, ShardReply};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Fewest jobs of an answer re-run: with two, claiming jobs not done never pays in
/// expectation (see docs/PONW-SECURITY.md, issue 21).
const MIN_SAMPLES: u64 = 2;
/// Most of a worker's round trip taken off its answer's time.
pub const MAX_RTT_ALLOWANCE: Duration = Duration::from_secs(1);
/// How late after the minute's probe instant a probe may still fire.
const MAX_LATE_MS: u64 = 1_000;
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
    probe: CapacityProbe,
    /// The worker's peers and the round trip allowed for them.
    peers: Vec<PeerId>,
    deadline: Duration,
}

/// A worker's answer: the jobs it finished in the window, (job, encoded commitment).
type Jobs = Vec<(u32, Vec<u8>)>;

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
        if now_ms() > fires_at + MAX_LATE_MS {
            // Probing these now would give each a window of its own: a machine's accounts
            // must share one. They are probed from the next minute on.
            info!(
                minute,
                late = ready.len(),
                "the probe instant has passed; not probing"
            );
            ready.clear();
        } else if !wait_until(fires_at, &mut shutdown).await {
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
        if !answered.is_empty() || !failed.is_empty() {
            submit(&checker, minute, answered, failed);
        }
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

/// Unix milliseconds now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until Unix millisecond `at`; false on shutdown.
async fn wait_until(at: u64, shutdown: &mut watch::Receiver<bool>) -> bool {
    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
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

/// Builds one probe (signed, with the executor to check it with, the worker's peers and
/// the deadline) before the instant, so firing costs nothing more.
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
    let (peers, rtt, advertised) = if task.worker == *checker.account() {
        (Vec::new(), Duration::ZERO, 0)
    } else {
        checker
            .route_to(&task.worker, task.layers)
            .map_err(|e| format!("{e:#}"))?
    };
    let mut probe = CapacityProbe {
        model: ctx.model,
        layers: task.layers,
        minute: task.minute,
        worker: task.worker.clone(),
        input_seed: task.input_seed,
        nonce: Hash::from(rand::random::<[u8; 32]>()),
        positions: task.positions,
        fires_at_ms: task.fires_at_ms,
        window_ms: params.window_ms,
        prober: checker.account().clone(),
        signature: neuroshard_primitives::Signature::from_raw([0; 64]),
    };
    probe.signature = crypto::sign(&ctx.key, &probe.signed_bytes());
    Ok(Prepared {
        deadline: deadline(params, &task, advertised, rtt),
        task,
        exec,
        probe,
        peers,
    })
}

/// When a worker's answer must be in, from the instant: the window, the jobs it has in
/// flight at the window's end ([`STREAMS`]) at its advertised throughput (at least [`floor_throughput`]), its path's round trip (at
/// most [`MAX_RTT_ALLOWANCE`]) and the chain's slack.
fn deadline(
    params: &ProbeParams,
    task: &ponw::ProbeTask,
    advertised: u64,
    rtt: Duration,
) -> Duration {
    let job = u64::from(task.positions) * u64::from(task.layers.len()) * STREAMS as u64;
    let speed = advertised.max(floor_throughput(params));
    let ms = u64::from(params.window_ms)
        + job.saturating_mul(1000) / speed
        + rtt.min(MAX_RTT_ALLOWANCE).as_millis() as u64
        + u64::from(params.deadline_slack_ms);
    Duration::from_millis(ms).min(MAX_DEADLINE)
}

/// Fires every prepared probe at once; then checks the answers (a sample of each
/// answer's jobs re-run) and returns each worker's proven throughput or why it failed.
async fn fire_all(
    checker: &Arc<SpotChecker>,
    ready: Vec<Prepared>,
    params: &ProbeParams,
) -> Vec<(AccountId, Result<u64, String>)> {
    let mut running = tokio::task::JoinSet::new();
    for (i, p) in ready.iter().enumerate() {
        let (checker, probe, peers, deadline) = (
            checker.clone(),
            p.probe.clone(),
            p.peers.clone(),
            p.deadline,
        );
        let own = p.task.worker == *checker.account();
        running.spawn(async move {
            let started = Instant::now();
            let answer = if own {
                local_answer(&checker, probe).await
            } else {
                remote_answer(&checker, &peers, probe, deadline).await
            };
            (i, answer.map(|jobs| (jobs, started.elapsed())))
        });
    }
    let mut answers: Vec<Option<Result<(Jobs, Duration), String>>> =
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
            Ok((jobs, took)) => judge(p, jobs, took, params).await,
            Err(why) => Err(why),
        };
        out.push((worker, outcome));
    }
    out
}

/// The throughput an answer proves (its jobs' layer-positions over the window), once it
/// is in time, well formed and its sampled jobs are right.
async fn judge(
    p: Prepared,
    jobs: Jobs,
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
    let ordered = jobs.windows(2).all(|w| w[0].0 < w[1].0);
    if jobs.is_empty() || !ordered || jobs.len() > MAX_JOBS {
        return Err(format!("{} jobs, not a valid answer", jobs.len()));
    }
    let work = jobs.len() as u128 * u128::from(p.task.positions) * u128::from(p.task.layers.len());
    let throughput = (work * 1000 / u128::from(params.window_ms.max(1))) as u64;
    let wanted = (jobs.len() as u64 * u64::from(params.sample_permill)).div_ceil(1_000_000);
    let mut picks: Vec<usize> = (0..jobs.len()).collect();
    rand::seq::SliceRandom::shuffle(&mut picks[..], &mut rand::thread_rng());
    picks.truncate((wanted.max(MIN_SAMPLES) as usize).min(jobs.len()));
    let sampled: Vec<(u32, Vec<u8>)> = picks.iter().map(|&i| jobs[i].clone()).collect();
    let (exec, probe) = (p.exec, p.probe);
    let verdict = tokio::task::spawn_blocking(move || check_jobs(&exec, &probe, &sampled))
        .await
        .map_err(|e| e.to_string())?;
    verdict?;
    debug!(throughput, jobs = jobs.len(), "capacity probe passed");
    Ok(throughput)
}

/// Re-runs `sampled` jobs of `probe` and compares them with the worker's commitments.
fn check_jobs(
    exec: &ServedWeights,
    probe: &CapacityProbe,
    sampled: &[(u32, Vec<u8>)],
) -> Result<(), String> {
    for (job, bytes) in sampled {
        let claimed = ActivationCommitment::decode(bytes)
            .ok_or_else(|| format!("job {job}'s commitment is malformed"))?;
        let ours = expected_commitment(
            &exec.exec,
            (&probe.input_seed, &probe.nonce),
            *job,
            probe.positions as usize,
        )
        .map_err(|e| format!("this node could not re-run job {job}: {e}"))?;
        if !ours.matches(&claimed) {
            return Err(format!(
                "job {job} differs from the shard's output on its input"
            ));
        }
    }
    Ok(())
}

/// This node's own answer, from its shard of the probe's layers.
async fn local_answer(checker: &SpotChecker, probe: CapacityProbe) -> Result<Jobs, String> {
    let shard = checker
        .local_shard(&probe.layers)
        .ok_or("this node does not serve the layers it announced")?
        .clone();
    tokio::task::spawn_blocking(move || {
        let window = window_left(probe.fires_at_ms, probe.window_ms, unix_ms());
        let positions = probe.positions as usize;
        let weights = shard.weights();
        run_window(
            &weights.exec,
            (&probe.input_seed, &probe.nonce),
            positions,
            window,
            None,
        )
    })
    .await
    .map_err(|e| e.to_string())
}

/// Sends the probe to the worker's peers (first answer wins, each within `deadline`).
async fn remote_answer(
    checker: &SpotChecker,
    peers: &[PeerId],
    probe: CapacityProbe,
    deadline: Duration,
) -> Result<Jobs, String> {
    let network = &checker
        .context()
        .net
        .as_ref()
        .ok_or("no network to reach the worker")?
        .network;
    let call = InferenceCall::CapacityProbe(probe);
    let mut last = String::from("no peer answered");
    for peer in peers {
        let reply = tokio::time::timeout(deadline, ask(network, *peer, call.clone())).await;
        match reply {
            Ok(Ok(ShardReply::Inference(InferenceReply::CapacityProbe(jobs)))) => return Ok(jobs),
            Ok(Ok(ShardReply::Error(e))) => last = e,
            Ok(Ok(_)) => last = "the reply does not answer the probe".into(),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = format!("no answer within {} ms", deadline.as_millis()),
        }
    }
    Err(last)
}
