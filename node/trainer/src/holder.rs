//! One local holder of a trained shard: the round loop described in the parent module.
//! The chain decides everything that must agree among holders — the round, the adapter
//! version a round starts from, and which receipts a round aggregates (those recorded by
//! the end of its collection window, read from finalized state) — so every honest holder
//! aggregates the same pseudo-gradients in the same order and reports the same result.

use crate::{
    lora_config, trainer_config, TrainOptions, TrainingContext, MAX_WINDOWS, POOL_WINDOWS, SEQ,
};
use anyhow::Context;
use neuroshard_client::hex_hash;
use neuroshard_inference::tokenizer::Tokenizer;
use neuroshard_primitives::{BlockNumber, Call, Hash, LayerRange, TrainingCall};
use neuroshard_runtime::training::{self as pallet, GradientRecord};
use neuroshard_training::corpus::{HELD_OUT, TRAIN};
use neuroshard_training::{
    AdapterLayout, Contribution, Dataset, FrozenModel, LocalUpdate, ShardTrainer,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a holder keeps asking peers for a round's missing pseudo-gradients.
const FETCH_PATIENCE: Duration = Duration::from_secs(60);

/// The chain's view of a shard's training, at the best and finalized blocks.
struct RoundView {
    round: u32,
    adapter: Option<Hash>,
    /// Last block of the open round's collection window (None: no receipt yet).
    collecting_until: Option<BlockNumber>,
    /// That window's end when the attempt went stale (see `ShardTraining::stale_window`).
    stale: Option<BlockNumber>,
    best: BlockNumber,
    finalized: BlockNumber,
}

fn read_view(ctx: &TrainingContext, layers: LayerRange) -> anyhow::Result<RoundView> {
    let finalized = ctx.chain.finalized_header().number;
    ctx.chain.with_best_state(|state, head| {
        let p = pallet::params(state)?;
        let s = pallet::shard(state, ctx.model, layers)?;
        Ok(RoundView {
            round: s.round,
            adapter: s.adapter,
            collecting_until: s.collecting_until(p.collect_blocks),
            stale: s.stale_window(p.collect_blocks, head.number),
            best: head.number,
            finalized,
        })
    })
}

/// The receipts of `round` as the finalized chain recorded them.
fn finalized_records(
    ctx: &TrainingContext,
    layers: LayerRange,
    round: u32,
) -> anyhow::Result<Vec<GradientRecord>> {
    let hash = ctx.chain.finalized_header().hash();
    let state = ctx
        .chain
        .state_view(&hash)?
        .context("finalized state not available")?;
    let records = pallet::receipts(&state, &(ctx.model, layers, round))?;
    state.check()?;
    Ok(records)
}

/// Builds the holder (blocking: loads the frozen model and tokenizes its data).
fn build(
    ctx: &TrainingContext,
    tokenizer: &Tokenizer,
    layers: LayerRange,
) -> anyhow::Result<(ShardTrainer, Dataset)> {
    let range = layers.start as usize..layers.end as usize;
    let model = Arc::new(FrozenModel::new(&ctx.base, range.clone())?);
    let layout = AdapterLayout::new(model.config(), range, lora_config())?;
    // The shared pool: each round trains on the windows assigned to this worker.
    let local = Dataset::new(&model, &tokenizer.encode(TRAIN)?, SEQ, POOL_WINDOWS)?;
    let held_out = Dataset::new(&model, &tokenizer.encode(HELD_OUT)?, SEQ, MAX_WINDOWS)?;
    let trainer = ShardTrainer::new(
        ctx.key.clone(),
        ctx.model,
        model,
        layout,
        local,
        trainer_config(),
    )?;
    Ok((trainer, held_out))
}

/// Runs `f` on the trainer on a blocking thread (training is seconds of CPU work).
async fn blocking<T: Send + 'static>(
    trainer: &mut Option<ShardTrainer>,
    f: impl FnOnce(&mut ShardTrainer) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let mut t = trainer.take().context("trainer lost")?;
    let (t, out) = tokio::task::spawn_blocking(move || {
        let out = f(&mut t);
        (t, out)
    })
    .await
    .context("training thread panicked")?;
    *trainer = Some(t);
    out
}

/// Trains `options.layers` with the other holders until `shutdown`.
pub async fn run_holder(
    ctx: TrainingContext,
    tokenizer: Tokenizer,
    options: TrainOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let layers = options.layers;
    let built = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || build(&ctx, &tokenizer, layers)).await
    };
    let (trainer, held_out) = match built {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return warn!(layers = %layers, error = %format!("{e:#}"), "cannot train"),
        Err(e) => return warn!(layers = %layers, error = %e, "cannot train"),
    };
    let held_out = Arc::new(held_out);
    let mut trainer = Some(trainer);
    let evaluate = |held_out: Arc<Dataset>| {
        move |t: &mut ShardTrainer| Ok(t.evaluate(&held_out, trainer_config().inner.batch)?)
    };
    match blocking(&mut trainer, evaluate(held_out.clone())).await {
        Ok(loss) => ctx.board.update_status(layers, |s| {
            s.held_out_loss.push(loss);
            s.poison = options.poison();
        }),
        Err(e) => return warn!(error = %format!("{e:#}"), "cannot evaluate the adapter"),
    }
    info!(layers = %layers, poison = ?options.poison(), "Proof of Training: holder started");
    // The initial adapter is a version too: a holder that must roll back to it (round 0
    // started over) resumes from this snapshot.
    let initial = match trainer.as_ref() {
        Some(t) => {
            let (version, snapshot) = (t.adapter_hash(), t.snapshot());
            if let Ok(encoded) = snapshot.encode(crate::MAX_PAYLOAD) {
                ctx.board
                    .insert_snapshot(ctx.model, layers, version, snapshot, encoded);
            }
            version
        }
        None => return,
    };
    // The round this holder contributed to and the round it reported, and the stale
    // attempt it last started over from.
    let (mut contributed, mut reported): (Option<u32>, Option<u32>) = (None, None);
    // This holder's contribution to the open round, revealed (put on the board for
    // peers) only once the round's collection window is over and final: until then
    // nobody can copy it.
    let mut sealed: Option<Contribution> = None;
    let mut restarted: Option<(u32, BlockNumber)> = None;
    loop {
        if !ctx.chain.wait_half_slot(&mut shutdown).await {
            return;
        }
        let view = match read_view(&ctx, layers) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "training: cannot read the chain");
                continue;
            }
        };
        let Some(t) = trainer.as_ref() else { return };
        let (my_round, my_adapter) = (t.round(), t.adapter_hash());
        let chain_adapter = view.adapter.unwrap_or(initial);
        let stale = view.stale;
        if let Some(until) = stale {
            if restarted != Some((view.round, until)) {
                // No majority in time: this holder contributes again to a new attempt.
                info!(layers = %layers, round = view.round, "training round did not close in time: starting it over");
                restarted = Some((view.round, until));
                (contributed, reported) = (None, None);
            }
        }
        let in_step = my_round == view.round && my_adapter == chain_adapter;
        if !in_step {
            // Ahead (reported, waiting for the round to close) unless the attempt went
            // stale; behind or on another version: resume from a peer's snapshot.
            if my_round > view.round && stale.is_none() {
                continue;
            }
            resume(&ctx, &mut trainer, layers, &chain_adapter, view.round).await;
            continue;
        }
        if options.rounds.is_some_and(|limit| view.round >= limit) {
            info!(layers = %layers, rounds = view.round, "Proof of Training: the rounds asked for are done");
            return;
        }
        let window_open = view.collecting_until.is_none_or(|until| view.best <= until);
        if contributed != Some(view.round) && (window_open || stale.is_some()) {
            match contribute(&ctx, &mut trainer, options.poison()).await {
                Ok(c) => {
                    contributed = Some(view.round);
                    sealed = Some(c);
                }
                Err(e) => record_error(&ctx, layers, "contributing", e),
            }
            continue;
        }
        let closed_and_final = view
            .collecting_until
            .is_some_and(|until| view.finalized > until);
        if contributed == Some(view.round)
            && reported != Some(view.round)
            && closed_and_final
            && stale.is_none()
        {
            if let Some(c) = sealed.take() {
                ctx.board.insert_contribution(c);
            }
            let poison_adapter = options.poison_adapter();
            match aggregate_and_report(&ctx, &mut trainer, (layers, view.round), poison_adapter)
                .await
            {
                Ok(()) => {
                    reported = Some(view.round);
                    if let Ok(loss) = blocking(&mut trainer, evaluate(held_out.clone())).await {
                        info!(layers = %layers, round = view.round, held_out_loss = loss, "round applied");
                        ctx.board
                            .update_status(layers, |s| s.held_out_loss.push(loss));
                    }
                }
                Err(e) => {
                    // Too few pseudo-gradients for the robust rule (a holder missed the
                    // window): wait for the attempt to go stale and start over.
                    reported = Some(view.round);
                    record_error(&ctx, layers, "aggregating", e);
                }
            }
        }
    }
}

fn record_error(ctx: &TrainingContext, layers: LayerRange, what: &str, e: anyhow::Error) {
    let e = format!("{what}: {e:#}");
    warn!(layers = %layers, error = %e, "training round step failed");
    ctx.board.update_status(layers, |s| s.last_error = Some(e));
}

/// Step 1: training on this round's assignment, the signed receipt on chain; returns
/// the contribution to reveal once the collection window is over.
async fn contribute(
    ctx: &TrainingContext,
    trainer: &mut Option<ShardTrainer>,
    poison: Option<f32>,
) -> anyhow::Result<Contribution> {
    let started = std::time::Instant::now();
    let (update, contribution): (LocalUpdate, Contribution) = blocking(trainer, move |t| {
        let update = t.train_local()?;
        // Fault injection: a poisoning holder scales its pseudo-gradient, which the
        // robust aggregate must exclude.
        let shared: Vec<f32> = match poison {
            Some(factor) => update.pseudo_gradient.iter().map(|g| g * factor).collect(),
            None => update.pseudo_gradient.clone(),
        };
        let contribution = t.contribution(&shared, update.loss_before, update.loss_after)?;
        Ok((update, contribution))
    })
    .await?;
    let b = &contribution.receipt.body;
    info!(
        layers = %b.layers, round = b.round, loss_before = update.loss_before,
        loss_after = update.loss_after, bytes = contribution.payload.len(),
        ms = started.elapsed().as_millis() as u64,
        pseudo_gradient = %hex_hash(&b.pseudo_gradient), "submitting a gradient receipt"
    );
    let (layers, receipt) = (b.layers, contribution.receipt.clone());
    ctx.board.update_status(layers, |s| {
        s.local_loss = Some((update.loss_before, update.loss_after))
    });
    let call = Call::Training(TrainingCall::SubmitGradientReceipt { receipt });
    ctx.chain.sign_and_submit(&ctx.key, call)?;
    Ok(contribution)
}

/// Step 2: the round's recorded pseudo-gradients, the robust aggregate, the report.
async fn aggregate_and_report(
    ctx: &TrainingContext,
    trainer: &mut Option<ShardTrainer>,
    (layers, round): (LayerRange, u32),
    poison_adapter: Option<f32>,
) -> anyhow::Result<()> {
    let records = finalized_records(ctx, layers, round)?;
    let deadline = tokio::time::Instant::now() + FETCH_PATIENCE;
    let mut contributions = Vec::new();
    let mut missing: Vec<&GradientRecord> = records.iter().collect();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for r in missing {
            match ctx
                .contribution(layers, round, &r.pseudo_gradient, &r.worker)
                .await
            {
                Some(c) => contributions.push(c),
                None => still.push(r),
            }
        }
        missing = still;
        if missing.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !missing.is_empty() {
        warn!(layers = %layers, round, missing = missing.len(), "aggregating without pseudo-gradients no peer served");
    }
    let mut outcome = blocking(trainer, move |t| Ok(t.apply_round(&contributions)?)).await?;
    if let Some(factor) = poison_adapter {
        // Fault injection: a colluding holder reports (and serves) a scaled adapter.
        outcome.result.adapter = blocking(trainer, move |t| {
            let mut s = t.snapshot();
            s.theta.iter_mut().for_each(|v| *v *= factor);
            let version = t.layout().hash(&s.theta);
            t.restore(s, &version)?;
            Ok(version)
        })
        .await?;
    }
    let Some(t) = trainer.as_ref() else {
        anyhow::bail!("trainer lost");
    };
    let version = t.adapter_hash();
    let snapshot = t.snapshot();
    let encoded = snapshot.encode(crate::MAX_PAYLOAD)?;
    ctx.board
        .insert_snapshot(ctx.model, layers, version, snapshot, encoded);
    ctx.board.update_status(layers, |s| {
        s.round = round + 1;
        s.adapter = Some(hex_hash(&version));
        s.rounds_applied += 1;
    });
    info!(
        layers = %layers, round, accepted = outcome.accepted.len(),
        rejected = outcome.rejected.len(), invalid = outcome.invalid,
        adapter = %hex_hash(&version), "reporting the round's result"
    );
    let call = Call::Training(TrainingCall::ReportRoundResult {
        result: outcome.result,
    });
    ctx.chain.sign_and_submit(&ctx.key, call)?;
    Ok(())
}

/// Step 3: resumes from a peer's snapshot of the chain's adapter `version`.
async fn resume(
    ctx: &TrainingContext,
    trainer: &mut Option<ShardTrainer>,
    layers: LayerRange,
    version: &Hash,
    round: u32,
) {
    let snapshot = match ctx.snapshot(layers, version, None).await {
        Ok(s) if s.round == round => s,
        Ok(s) => {
            return warn!(layers = %layers, round, snapshot_round = s.round, "adapter snapshot is for another round")
        }
        Err(e) => {
            return warn!(layers = %layers, error = %format!("{e:#}"), "cannot resume training yet")
        }
    };
    let version = *version;
    match blocking(trainer, move |t| Ok(t.restore(snapshot, &version)?)).await {
        Ok(()) => {
            info!(layers = %layers, round, adapter = %hex_hash(&version), "resumed from a peer's adapter snapshot");
            ctx.board.update_status(layers, |s| {
                s.round = round;
                s.adapter = Some(hex_hash(&version));
                s.rounds_resumed += 1;
            });
        }
        Err(e) => {
            warn!(layers = %layers, error = %format!("{e:#}"), "cannot resume from the snapshot")
        }
    }
}
