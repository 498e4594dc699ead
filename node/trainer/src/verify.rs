//! The validator's side of Proof of Training: verifying the closed rounds the chain drew
//! this node's account for (or any overdue one, when it is a validator), as the training
//! pallet's `verify` module describes. For each round it fetches every recorded
//! receipt's pseudo-gradient (revealed by its author once the collection window closed)
//! and the snapshot of the round's base adapter version, replays each worker's loss on
//! its assigned probe window before and after applying its pseudo-gradient
//! (`neuroshard_training::gauntlet`), fetches the snapshot of the round's new version
//! (verified against the hash the chain recorded) and compares its held-out loss with
//! the adopted version's, then submits the verdicts. A payload or snapshot no peer
//! serves within [`PATIENCE`] is `Unavailable`.

use crate::{lora_config, trainer_config, TrainingContext, MAX_PAYLOAD, POOL_WINDOWS, SEQ};
use anyhow::Context;
use neuroshard_client::hex_hash;
use neuroshard_inference::tokenizer::Tokenizer;
use neuroshard_primitives::{
    loss_to_fixed, Call, Hash, LayerRange, RoundVerification, TrainingCall,
};
use neuroshard_runtime::training::{self as pallet, AwaitingVerification, RoundKey};
use neuroshard_runtime::Runtime;
use neuroshard_training::corpus::{HELD_OUT, TRAIN};
use neuroshard_training::gauntlet::{judge_adapter, verify_contributions, Candidate, RoundContext};
use neuroshard_training::{codec, evaluate_windows, AdapterLayout, Dataset, FrozenModel};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long the verifier keeps asking peers for a round's missing payloads and
/// snapshots before judging them unavailable.
const PATIENCE: Duration = Duration::from_secs(30);
/// Held-out windows an adapter version is scored on.
const HELD_OUT_WINDOWS: usize = 1;

/// What the verifier holds for one shard: its frozen model, adapter layout, the shared
/// training pool and the held-out windows.
struct ShardData {
    model: FrozenModel,
    layout: AdapterLayout,
    pool: Dataset,
    held_out: Dataset,
}

/// Verifies the rounds due to this node until `shutdown`.
pub async fn verify_rounds(
    ctx: TrainingContext,
    tokenizer: Tokenizer,
    mut shutdown: watch::Receiver<bool>,
) {
    let tokenizer = Arc::new(tokenizer);
    let mut shards: HashMap<LayerRange, Arc<ShardData>> = HashMap::new();
    // Held-out loss per (layers, adapter version), and when each round was first tried.
    let mut held_out: HashMap<(LayerRange, Option<Hash>), f32> = HashMap::new();
    let mut first_try: HashMap<RoundKey, Instant> = HashMap::new();
    let mut submitted: Vec<RoundKey> = Vec::new();
    loop {
        if !ctx.chain.wait_half_slot(&mut shutdown).await {
            return;
        }
        let due = match due_rounds(&ctx) {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "training verifier cannot read the chain");
                continue;
            }
        };
        let waiting: Vec<RoundKey> = due.iter().map(|a| a.key).collect();
        submitted.retain(|k| waiting.contains(k));
        first_try.retain(|k, _| waiting.contains(k));
        let Some(next) = due.into_iter().find(|a| !submitted.contains(&a.key)) else {
            continue;
        };
        let layers = next.key.1;
        let data = match shards.get(&layers) {
            Some(d) => d.clone(),
            None => match load(&ctx, &tokenizer, layers).await {
                Ok(d) => shards.entry(layers).or_insert(d).clone(),
                Err(e) => {
                    warn!(layers = %layers, error = %format!("{e:#}"), "cannot verify training");
                    continue;
                }
            },
        };
        let patient = first_try
            .entry(next.key)
            .or_insert_with(Instant::now)
            .elapsed()
            < PATIENCE;
        match verify(&ctx, &data, next.key, patient, &mut held_out).await {
            Ok(Some(v)) => {
                let call =
                    Call::Training(TrainingCall::SubmitRoundVerification { verification: v });
                match ctx.chain.sign_and_submit(&ctx.key, call) {
                    Ok(_) => submitted.push(next.key),
                    Err(e) => warn!(error = %format!("{e:#}"), "verification not submitted"),
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(layers = %layers, round = next.key.2, error = %format!("{e:#}"), "cannot verify the round")
            }
        }
    }
}

/// The rounds this node may verify now: drawn to it, or overdue while it is a validator.
fn due_rounds(ctx: &TrainingContext) -> anyhow::Result<Vec<AwaitingVerification>> {
    let me = ctx.account();
    ctx.chain.with_best_state(|state, head| {
        let p = pallet::params(state)?;
        let validator = Runtime::validators(state)?.contains(&me);
        Ok(pallet::awaiting(state)?
            .into_iter()
            .filter(|a| a.key.0 == ctx.model)
            .filter(|a| {
                let overdue = head.number > a.closed_at.saturating_add(u64::from(p.verify_blocks));
                a.verifier == me || (overdue && validator)
            })
            .collect())
    })
}

/// Builds what verifying `layers` needs (blocking work on a blocking thread).
async fn load(
    ctx: &TrainingContext,
    tokenizer: &Arc<Tokenizer>,
    layers: LayerRange,
) -> anyhow::Result<Arc<ShardData>> {
    let (ctx, tokenizer) = (ctx.clone(), tokenizer.clone());
    tokio::task::spawn_blocking(move || {
        let range = layers.start as usize..layers.end as usize;
        let model = FrozenModel::new(&ctx.base, range.clone())?;
        let layout = AdapterLayout::new(model.config(), range, lora_config())?;
        let pool = Dataset::new(&model, &tokenizer.encode(TRAIN)?, SEQ, POOL_WINDOWS)?;
        let held_out = Dataset::new(&model, &tokenizer.encode(HELD_OUT)?, SEQ, HELD_OUT_WINDOWS)?;
        info!(layers = %layers, pool = pool.len(), "training verifier ready");
        Ok(Arc::new(ShardData {
            model,
            layout,
            pool,
            held_out,
        }))
    })
    .await
    .context("verifier setup panicked")?
}

/// The adapter values of `version` of a shard (`None`: the initial adapter), from a
/// verified snapshot.
async fn theta_of(
    ctx: &TrainingContext,
    data: &ShardData,
    layers: LayerRange,
    version: Option<Hash>,
) -> Option<Vec<f32>> {
    match version {
        None => Some(data.layout.init(trainer_config().init_seed)),
        Some(v) => ctx.snapshot(layers, &v, None).await.ok().map(|s| s.theta),
    }
}

/// The verification of round `key`, or `None` while something is missing and the
/// verifier is still `patient`.
async fn verify(
    ctx: &TrainingContext,
    data: &Arc<ShardData>,
    key: RoundKey,
    patient: bool,
    held_out: &mut HashMap<(LayerRange, Option<Hash>), f32>,
) -> anyhow::Result<Option<RoundVerification>> {
    let (model, layers, round) = key;
    let (records, base, new, adopted) = ctx.chain.with_best_state(|state, _| {
        let records = pallet::receipts(state, &key)?;
        let closed = |r: u32| pallet::closed_round(state, &(model, layers, r));
        let base = match round.checked_sub(1) {
            Some(previous) => closed(previous)?.map(|c| c.adapter),
            None => None,
        };
        let new = closed(round)?.context("round not closed")?.adapter;
        let adopted = pallet::adopted(state, model, layers)?;
        anyhow::Ok((records, base, new, adopted))
    })?;
    let mut candidates = Vec::with_capacity(records.len());
    for r in &records {
        let payload = ctx
            .contribution(layers, round, &r.pseudo_gradient, &r.worker)
            .await
            .and_then(|c| codec::decode(&c.payload, data.layout.len, MAX_PAYLOAD).ok());
        candidates.push(Candidate {
            worker: r.worker.clone(),
            claimed: (r.loss_before, r.loss_after),
            pseudo_gradient: payload,
        });
    }
    let theta_base = theta_of(ctx, data, layers, base).await;
    let theta_new = ctx.snapshot(layers, &new, None).await.ok().map(|s| s.theta);
    let theta_adopted = match held_out.contains_key(&(layers, adopted)) {
        true => None,
        false => theta_of(ctx, data, layers, adopted).await,
    };
    let missing = candidates.iter().any(|c| c.pseudo_gradient.is_none())
        || theta_base.is_none()
        || theta_new.is_none();
    if missing && patient {
        return Ok(None);
    }
    let started = Instant::now();
    let (d, adopted_loss) = (data.clone(), held_out.get(&(layers, adopted)).copied());
    let base_version = base.unwrap_or_else(|| {
        data.layout
            .hash(&data.layout.init(trainer_config().init_seed))
    });
    let scored = tokio::task::spawn_blocking(move || {
        score(
            &d,
            (model, layers, round),
            base_version,
            theta_base,
            &candidates,
            (theta_new, theta_adopted, adopted_loss),
        )
    })
    .await
    .context("verification panicked")??;
    let (v, new_loss, adopted_loss) = scored;
    if let Some(loss) = adopted_loss {
        held_out.insert((layers, adopted), loss);
    }
    if let Some(loss) = new_loss {
        held_out.insert((layers, Some(new)), loss);
    }
    let outcomes: Vec<&str> = v.checks.iter().map(|c| c.outcome.as_str()).collect();
    info!(
        layers = %layers, round, ?outcomes, adapter = %hex_hash(&new), adapter_outcome = v.adapter.as_str(),
        ms = started.elapsed().as_millis() as u64, "training round verified"
    );
    Ok(Some(v))
}

/// The blocking part: replays and held-out losses. Returns the verification and the
/// held-out losses of the new and the adopted versions (when computed).
#[allow(clippy::type_complexity)]
fn score(
    data: &ShardData,
    (model, layers, round): RoundKey,
    base: Hash,
    theta_base: Option<Vec<f32>>,
    candidates: &[Candidate],
    (theta_new, theta_adopted, adopted_loss): (Option<Vec<f32>>, Option<Vec<f32>>, Option<f32>),
) -> anyhow::Result<(RoundVerification, Option<f32>, Option<f32>)> {
    // Without the base version nothing can be replayed: every payload counts as
    // unavailable.
    let unavailable: Vec<Candidate>;
    let (theta, candidates) = match &theta_base {
        Some(theta) => (theta.as_slice(), candidates),
        None => {
            unavailable = candidates
                .iter()
                .map(|c| Candidate {
                    worker: c.worker.clone(),
                    claimed: c.claimed,
                    pseudo_gradient: None,
                })
                .collect();
            (&[][..], unavailable.as_slice())
        }
    };
    let ctx = RoundContext {
        model: &data.model,
        layout: &data.layout,
        pool: &data.pool,
        inner: &trainer_config().inner,
        shard: (model, layers),
        round,
        base,
        theta_base: theta,
    };
    let checks = verify_contributions(&ctx, candidates)?;
    let windows: Vec<usize> = (0..data.held_out.len()).collect();
    let loss = |theta: &[f32]| {
        evaluate_windows(
            &data.model,
            &data.layout,
            theta,
            &data.held_out,
            &windows,
            windows.len(),
        )
    };
    let adopted_loss = match (adopted_loss, theta_adopted) {
        (Some(l), _) => Some(l),
        (None, Some(theta)) => Some(loss(&theta)?),
        (None, None) => None,
    };
    let new_loss = theta_new.as_deref().map(loss).transpose()?;
    let adapter = judge_adapter(new_loss, adopted_loss);
    let v = RoundVerification {
        model,
        layers,
        round,
        checks,
        adapter,
        held_out_before: adopted_loss.map(loss_to_fixed).unwrap_or(0),
        held_out_after: new_loss.map(loss_to_fixed).unwrap_or(0),
    };
    Ok((v, new_loss, adopted_loss))
}
