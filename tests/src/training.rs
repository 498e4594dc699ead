//! Proof of Training as an adversary plays it from outside a node: gradient receipts
//! with made-up pseudo-gradient hashes (no payload behind them), signed by dev keys and
//! submitted over RPC, the round result such accounts report together, and what the
//! chain then says about a layer range (`neuroshard_training`), its verification and
//! rewards, and the liveness probes of its servers ([`TrainingEvents`]).

use crate::chain::{parse_hash, submit_and_wait};
use crate::RpcClient;
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    blake2_256, Call, GradientReceipt, GradientReceiptBody, Hash, LayerRange, RoundResult,
    TrainingCall,
};
use serde_json::{json, Value};
use sp_core::Pair as _;
use std::collections::BTreeMap;
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

/// What the chain's events said so far about training and probes, read block by block.
#[derive(Debug)]
pub struct TrainingEvents {
    /// The next block to read.
    pub next: u64,
    /// Training rewards minted, per SS58 account.
    pub paid: BTreeMap<String, u128>,
    /// (worker, outcome) of every verified contribution.
    pub verdicts: Vec<(String, String)>,
    /// Every `TrainingAdapterVerified` event.
    pub adapters: Vec<Value>,
    /// (block, worker, answered) of every liveness probe.
    pub probes: Vec<(u64, String, bool)>,
}

impl Default for TrainingEvents {
    fn default() -> Self {
        Self {
            next: 1,
            paid: BTreeMap::new(),
            verdicts: Vec::new(),
            adapters: Vec::new(),
            probes: Vec::new(),
        }
    }
}

impl TrainingEvents {
    /// Reads the blocks up to the best one.
    pub fn poll(&mut self, rpc: &RpcClient) -> anyhow::Result<()> {
        for (block, e) in events_by_block(rpc, &mut self.next)? {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            match e["event"].as_str() {
                Some("TrainingRewardPaid") => {
                    *self.paid.entry(s("account")).or_default() += s("amount").parse::<u128>()?
                }
                Some("TrainingContributionVerified") => {
                    self.verdicts.push((s("worker"), s("outcome")))
                }
                Some("TrainingAdapterVerified") => self.adapters.push(e.clone()),
                Some("LivenessProbed") => {
                    self.probes
                        .push((block, s("worker"), e["answered"] == true))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Training rewards paid to `who` so far.
    pub fn paid_to(&self, who: &str) -> u128 {
        self.paid.get(who).copied().unwrap_or(0)
    }

    /// Whether each probe of `worker` in a block after `block` was answered.
    pub fn probes_after(&self, worker: &str, block: u64) -> Vec<bool> {
        self.probes
            .iter()
            .filter(|(b, w, _)| *b > block && w == worker)
            .map(|(_, _, answered)| *answered)
            .collect()
    }
}
