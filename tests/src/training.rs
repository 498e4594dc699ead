//! Proof of Training as an adversary plays it from outside a node: gradient receipts
//! with made-up pseudo-gradient hashes (no payload behind them), signed by dev keys and
//! submitted over RPC, the round result such accounts report together, and what the
//! chain then says about a layer range (`neuroshard_training`) and its rewards.

use crate::chain::{parse_hash, submit_and_wait};
use crate::RpcClient;
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    blake2_256, Call, GradientReceipt, GradientReceiptBody, Hash, LayerRange, RoundResult,
    TrainingCall,
};
use serde_json::{json, Value};
use sp_core::Pair as _;
use std::time::Duration;

const INCLUSION: Duration = Duration::from_secs(60);

/// The chain's model hash (from `neuroshard_shards`).
pub fn model_hash(rpc: &RpcClient) -> anyhow::Result<Hash> {
    parse_hash(&rpc.call("neuroshard_shards", json!([]))?["model"])
}

/// `neuroshard_training` for `layers` ("20-28").
pub fn training(rpc: &RpcClient, layers: &str) -> anyhow::Result<Value> {
    rpc.call("neuroshard_training", json!([layers]))
}

/// The made-up pseudo-gradient hash `uri` claims (nobody holds a payload for it).
pub fn made_up_gradient(uri: &str) -> Hash {
    blake2_256(format!("made up by {uri}").as_bytes())
}

/// `uri` signs a gradient receipt for `round` of `layers` claiming
/// [`made_up_gradient`] (a loss that went from 3.0 to 2.0) and submits it; returns the
/// block that included it.
pub fn submit_made_up_receipt(
    rpc: &RpcClient,
    uri: &str,
    layers: LayerRange,
    round: u32,
    base_adapter: Hash,
) -> anyhow::Result<u64> {
    let key = keypair_from_uri(uri)?;
    let body = GradientReceiptBody {
        worker: key.public().into(),
        model: model_hash(rpc)?,
        layers,
        round,
        base_adapter,
        pseudo_gradient: made_up_gradient(uri),
        payload_bytes: 4096,
        loss_before: 3_000_000,
        loss_after: 2_000_000,
    };
    let receipt = GradientReceipt::sign(body, &key);
    let call = Call::Training(TrainingCall::SubmitGradientReceipt { receipt });
    Ok(submit_and_wait(rpc, uri, call, INCLUSION)?.1)
}

/// Each of `uris` reports the same result for `round` of `layers`: all their made-up
/// pseudo-gradients accepted, and adapter version `adapter`. Returns the block that
/// included the last report.
pub fn report_together(
    rpc: &RpcClient,
    uris: &[&str],
    layers: LayerRange,
    round: u32,
    adapter: Hash,
) -> anyhow::Result<u64> {
    let mut accepted: Vec<Hash> = uris.iter().map(|u| made_up_gradient(u)).collect();
    accepted.sort();
    let result = RoundResult {
        model: model_hash(rpc)?,
        layers,
        round,
        accepted,
        adapter,
    };
    let mut last = 0;
    for uri in uris {
        let call = Call::Training(TrainingCall::ReportRoundResult {
            result: result.clone(),
        });
        last = submit_and_wait(rpc, uri, call, INCLUSION)?.1;
    }
    Ok(last)
}

/// The events of each block from `*next` to the best one, with the block's number
/// (`*next` moves past them).
pub fn events_by_block(rpc: &RpcClient, next: &mut u64) -> anyhow::Result<Vec<(u64, Value)>> {
    let best = rpc.best_number()?;
    let mut out = Vec::new();
    while *next <= best {
        let events = rpc.call("neuroshard_events", json!([*next]))?;
        let events = events.as_array().cloned().unwrap_or_default();
        out.extend(events.into_iter().map(|e| (*next, e)));
        *next += 1;
    }
    Ok(out)
}
