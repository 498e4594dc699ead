//! The validator's liveness prober: the serving half of every worker's minute of uptime
//! (see `ponw::liveness`). Each minute the chain draws, per registered worker, the
//! validator that probes it, one of its announced shards and an input seed. This node
//! sends the workers drawn to it an ordinary shard request on that input (positions
//! 0..4 of a fresh session, as any client would), re-runs the shard itself with the
//! chain's adopted adapter version for those layers, compares the answers with the spot checks'
//! tolerance (`neuroshard_inference::probe`), and reports who answered and who did not
//! in one `report_liveness` extrinsic per minute. A worker that refuses, cannot be
//! reached, or answers wrong is reported as failed and earns no uptime for the minute.
//!
//! A worker that is this node itself (a sole validator, as in `dev` mode) is probed
//! through its own shard.

use crate::spot_checker::SpotChecker;
use neuroshard_client::hex_hash;
use neuroshard_inference::messages::ShardOutput;
use neuroshard_inference::probe::{check_probe, probe_input_for, probe_request};
use neuroshard_inference::spot_check::CheckOutcome;
use neuroshard_primitives::{AccountId, Call, PonwCall, SessionId};
use neuroshard_runtime::{ponw, training, Runtime};
use neuroshard_serving::protocol::{ask, InferenceCall, InferenceReply, ShardReply};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How long a probed worker has to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `shutdown` turns true.
pub async fn run(checker: Arc<SpotChecker>, mut shutdown: watch::Receiver<bool>) {
    // (minute, worker) probes already reported (in the pool or a block).
    let mut reported: HashSet<(u64, AccountId)> = HashSet::new();
    loop {
        if !checker.context().chain.wait_half_slot(&mut shutdown).await {
            return;
        }
        let tasks = match due_tasks(&checker) {
            Ok(tasks) => tasks,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "prober could not read the chain");
                continue;
            }
        };
        let tasks: Vec<_> = tasks
            .into_iter()
            .filter(|(t, _)| !reported.contains(&(t.minute, t.worker.clone())))
            .collect();
        let Some(minute) = tasks.first().map(|(t, _)| t.minute) else {
            continue;
        };
        reported.retain(|(m, _)| *m == minute);
        let started = std::time::Instant::now();
        let (mut answered, mut failed) = (Vec::new(), Vec::new());
        for (task, adapter) in tasks {
            match probe(&checker, &task, adapter).await {
                Ok(()) => answered.push(task.worker.clone()),
                Err(why) => {
                    info!(worker = %task.worker, layers = %task.layers, minute, reason = %why, "liveness probe failed");
                    failed.push(task.worker.clone());
                }
            }
            reported.insert((minute, task.worker));
        }
        let (passed, missed) = (answered.len(), failed.len());
        let ms = started.elapsed().as_millis() as u64;
        let call = Call::Ponw(PonwCall::ReportLiveness {
            minute,
            answered,
            failed,
        });
        let ctx = checker.context();
        match ctx.chain.sign_and_submit(&ctx.key, call) {
            Ok(hash) => {
                info!(minute, passed, failed = missed, ms, hash = %hex_hash(&hash), "liveness report submitted")
            }
            Err(e) => warn!(minute, error = %format!("{e:#}"), "liveness report not submitted"),
        }
    }
}

/// This node's probes of the minute the next block falls in, each with the adapter
/// version the chain adopted for its layers (what an honest worker serves).
fn due_tasks(
    checker: &SpotChecker,
) -> anyhow::Result<Vec<(ponw::ProbeTask, Option<neuroshard_primitives::Hash>)>> {
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
        Ok(out)
    })
}

/// Probes one worker: `Ok` when its answer matches this node's re-run, `Err` with the
/// reason otherwise. (This node's own failures to re-run also count against the worker;
/// they are logged as such.)
async fn probe(
    checker: &Arc<SpotChecker>,
    task: &ponw::ProbeTask,
    adapter: Option<neuroshard_primitives::Hash>,
) -> Result<(), String> {
    let ctx = checker.context();
    let snapshot = checker
        .snapshot_of(task.layers, adapter, &task.worker)
        .await
        .map_err(|e| format!("no adapter snapshot to re-run with: {e:#}"))?;
    let exec = checker
        .executor(task.layers, adapter, snapshot.as_ref())
        .map_err(|e| format!("this node cannot run the layers: {e:#}"))?;
    let input = probe_input_for(&exec.exec, &task.input_seed).map_err(|e| e.to_string())?;
    let session: SessionId = rand::random();
    let request = probe_request(ctx.model, session, task.layers, input.clone());
    let output = if task.worker == *checker.account() {
        let shard = checker
            .local_shard(&task.layers)
            .ok_or("this node does not serve the layers it announced")?
            .clone();
        let answer = tokio::task::spawn_blocking(move || {
            let out = shard.handle(&request).map(|r| r.output);
            shard.end_session(&session);
            out
        })
        .await
        .map_err(|e| e.to_string())?;
        answer.map_err(|e| e.to_string())?
    } else {
        remote_answer(checker, task, request).await?
    };
    let verdict = tokio::task::spawn_blocking(move || check_probe(&exec.exec, &input, &output))
        .await
        .map_err(|e| e.to_string())?;
    match verdict {
        Ok(CheckOutcome::Match) => {
            debug!(worker = %task.worker, layers = %task.layers, "liveness probe passed");
            Ok(())
        }
        Ok(CheckOutcome::Mismatch(why)) => Err(why),
        Err(e) => Err(format!("this node could not re-run the probe: {e}")),
    }
}

/// Sends the probe to the worker's announced peers (first answer wins) and ends the
/// session afterwards.
async fn remote_answer(
    checker: &SpotChecker,
    task: &ponw::ProbeTask,
    request: neuroshard_inference::ShardRequest,
) -> Result<ShardOutput, String> {
    let peers = checker
        .peers_of(&task.worker)
        .map_err(|e| format!("{e:#}"))?;
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
        let reply = tokio::time::timeout(ANSWER_TIMEOUT, ask(network, peer, call.clone())).await;
        match reply {
            Ok(Ok(ShardReply::Inference(InferenceReply::Forward(resp))))
                if resp.session == request.session && resp.start_pos == 0 =>
            {
                let _ = ask(network, peer, end.clone()).await;
                return Ok(resp.output);
            }
            Ok(Ok(_)) => last = "the reply does not answer the request".into(),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()),
        }
    }
    Err(last)
}
