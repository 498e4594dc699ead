//! Serving the trained adapters: every shard this node serves runs the adapter version
//! the chain adopted last for its layer range (the newest one a validator verified:
//! snapshot available, hashing to the version the round recorded, not worse on
//! held-out text; the base model while none is), whether or not this node trains it. The snapshot comes from this node's own holder or from a
//! peer, is verified against the chain's version, and is merged into the shard's
//! weights; sessions that started before keep their weights (see
//! `neuroshard_inference::shard`).

use crate::{adapter_weights, TrainingContext};
use neuroshard_client::hex_hash;
use neuroshard_inference::shard::Shard;
use neuroshard_runtime::training as pallet;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// Keeps `shards` on the chain's adapter versions until `shutdown`.
pub async fn follow_adapters(
    ctx: TrainingContext,
    shards: Vec<Arc<Shard>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if !ctx.chain.wait_half_slot(&mut shutdown).await {
            return;
        }
        for shard in &shards {
            let layers = shard.layers();
            let recorded = ctx
                .chain
                .with_best_state(|state, _| pallet::adopted(state, ctx.model, layers));
            let version = match recorded {
                Ok(Some(v)) if shard.adapter() != Some(v) => v,
                Ok(_) => continue,
                Err(e) => {
                    warn!(error = %e, "cannot read the shard's adapter version");
                    continue;
                }
            };
            let snapshot = match ctx.snapshot(layers, &version, None).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(layers = %layers, error = %format!("{e:#}"), "adapter not available yet");
                    continue;
                }
            };
            let (ctx2, shard2) = (ctx.clone(), shard.clone());
            let swapped = tokio::task::spawn_blocking(move || {
                let layout = ctx2.layout(layers)?;
                let weights = adapter_weights(&ctx2.base, &layout, layers, &snapshot)?;
                shard2.serve_weights(weights, Some(version))?;
                anyhow::Ok(())
            })
            .await;
            match swapped {
                Ok(Ok(())) => {
                    ctx.board.set_served(layers, version);
                    info!(layers = %layers, adapter = %hex_hash(&version), "serving the chain's adapter version")
                }
                Ok(Err(e)) => {
                    warn!(layers = %layers, error = %format!("{e:#}"), "cannot serve the adapter")
                }
                Err(e) => warn!(layers = %layers, error = %e, "adapter merge panicked"),
            }
        }
    }
}
