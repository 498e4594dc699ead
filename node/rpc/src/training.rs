//! `neuroshard_training`: Proof of Training for one layer range of the chain's model —
//! the chain's record (current round, adapter version, adopted version, collection
//! window, every round's gradient receipts with their losses, whether the aggregate
//! accepted them and the validator's verdict on each, closed rounds' adapter versions) and, when this node trains that range, its local holder's
//! progress (held-out loss after every round, see `training::board::HolderStatus`).

use crate::error::invalid_params;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::{crypto, fixed_to_loss, LayerRange};
use neuroshard_runtime::{ponw, training as pallet};
use neuroshard_trainer::board::{HolderStatus, TrainingBoard};
use serde::Serialize;
use std::sync::Arc;

/// Most rounds listed (the latest ones).
const MAX_ROUNDS: u32 = 64;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradientReceiptJson {
    pub worker: String,
    pub pseudo_gradient: String,
    pub loss_before: f32,
    pub loss_after: f32,
    /// `None` while the round is open.
    pub accepted: Option<bool>,
    /// The validator's verdict (`Improved`, `NoImprovement`, `Copied`, `Unavailable`,
    /// `Contradicted`); `None` until the closed round is verified.
    pub verified: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundJson {
    pub round: u32,
    /// The adapter version the round produced (`None`: still open).
    pub adapter: Option<String>,
    pub receipts: Vec<GradientReceiptJson>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJson {
    pub layers: String,
    /// The round receipts are taken for now.
    pub round: u32,
    /// The adapter version the last closed round produced, which training continues
    /// from (`None`: the initial one).
    pub adapter: Option<String>,
    /// The newest verified adapter version: what serving nodes run (`None`: the base
    /// model).
    pub adopted: Option<String>,
    /// Last block of the open round's collection window (`None`: no receipt yet).
    pub collecting_until: Option<u64>,
    pub rounds: Vec<RoundJson>,
    /// The adapter version this node's shard of the range serves to new sessions
    /// (`None`: the base model, or this node does not serve the range).
    pub served: Option<String>,
    /// This node's holder of the range, when it trains it.
    pub local: Option<HolderStatus>,
}

#[rpc(server)]
pub trait TrainingApi {
    /// Proof of Training of a layer range ("28-30") at the best block.
    #[method(name = "neuroshard_training")]
    fn training(&self, layers: String) -> RpcResult<TrainingJson>;
}

pub struct Training {
    pub client: Arc<Client>,
    pub board: Arc<TrainingBoard>,
}

impl TrainingApiServer for Training {
    fn training(&self, layers: String) -> RpcResult<TrainingJson> {
        let range = LayerRange::parse(&layers)
            .map_err(|e| invalid_params(format!("layers {layers:?}: {e}")))?;
        let read = self.client.with_best_state(|state, _| {
            let model = ponw::params(state)?.model.hash;
            let p = pallet::params(state)?;
            let shard = pallet::shard(state, model, range)?;
            let mut rounds = Vec::new();
            for round in shard.round.saturating_sub(MAX_ROUNDS - 1)..=shard.round {
                let key = (model, range, round);
                let receipts = pallet::receipts(state, &key)?;
                let closed = pallet::closed_round(state, &key)?;
                if receipts.is_empty() && closed.is_none() {
                    continue;
                }
                rounds.push(RoundJson {
                    round,
                    adapter: closed.map(|c| hex_hash(&c.adapter)),
                    receipts: receipts
                        .iter()
                        .map(|r| GradientReceiptJson {
                            worker: crypto::ss58(&r.worker),
                            pseudo_gradient: hex_hash(&r.pseudo_gradient),
                            loss_before: fixed_to_loss(r.loss_before),
                            loss_after: fixed_to_loss(r.loss_after),
                            accepted: r.accepted,
                            verified: r.verified.map(|o| o.as_str()),
                        })
                        .collect(),
                });
            }
            anyhow::Ok(TrainingJson {
                layers: range.to_string(),
                round: shard.round,
                adapter: shard.adapter.map(|a| hex_hash(&a)),
                adopted: shard.adopted.map(|(_, a)| hex_hash(&a)),
                collecting_until: shard.collecting_until(p.collect_blocks),
                rounds,
                served: None,
                local: None,
            })
        });
        let mut json = read.map_err(|e| crate::error::internal(e.to_string()))?;
        json.local = self.board.status(range);
        json.served = self.board.served(range).map(|v| hex_hash(&v));
        Ok(json)
    }
}
