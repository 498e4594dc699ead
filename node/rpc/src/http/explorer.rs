//! The explorer: a single static page (`explorer.html`) that polls `/api/overview`
//! every two seconds and shows the latest blocks (each with its hash, author and slot
//! decoded from the Substrate-layout header's digest), the rewards paid at the latest epoch
//! boundaries (rewards are only paid in an epoch's first block, so they are looked up
//! there rather than among the latest blocks), the shard map (which registered workers
//! serve which layers) and the peers.

use super::ApiState;
use crate::types::{HeaderJson, RewardJson};
use axum::extract::State;
use axum::response::Html;
use axum::Json;
use neuroshard_client::hex_hash;
use neuroshard_primitives::crypto;
use neuroshard_runtime::system::{epoch_of, epoch_start};
use neuroshard_runtime::{ponw, Runtime};
use serde_json::{json, Value};

/// Blocks shown on the page.
const RECENT_BLOCKS: u64 = 20;
/// Epoch boundaries whose rewards are shown.
const RECENT_PAYOUTS: u64 = 10;

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("explorer.html"))
}

/// `GET /api/overview`: everything the page shows, in one JSON document.
pub async fn overview(State(state): State<ApiState>) -> Json<Value> {
    let peers = crate::system::peer_list(state.net.as_ref()).await;
    let client = state.client.clone();
    let result = tokio::task::spawn_blocking(move || {
        let best = client.best_header();
        let finalized = client.finalized_header();
        let mut blocks = Vec::new();
        for number in (best.number.saturating_sub(RECENT_BLOCKS - 1)..=best.number).rev() {
            let Ok(Some(hash)) = client.block_hash(number) else {
                continue;
            };
            let Ok(Some(block)) = client.block(&hash) else {
                continue;
            };
            let events = client.events(&hash).ok().flatten().unwrap_or_default();
            blocks.push(json!({
                "header": HeaderJson::from(&block.header),
                "hash": hex_hash(&hash),
                "author": crypto::ss58(block.header.author()),
                "slot": block.header.slot(),
                "number": number,
                "extrinsics": block.extrinsics.len(),
                "events": events.len(),
                "rewards": RewardJson::from_events(&events),
            }));
        }
        let (workers, params) =
            client.with_best_state(|s, _| (ponw::WORKERS.entries(s), Runtime::params(s)));
        let workers = workers.unwrap_or_default();
        let epoch_length = params
            .as_ref()
            .map(|p| p.system.epoch_length.max(1))
            .unwrap_or(1);
        let last_payout = epoch_start(epoch_of(best.number, epoch_length), epoch_length);
        let payouts: Vec<Value> = (0..RECENT_PAYOUTS)
            .filter_map(|back| last_payout.checked_sub(back * epoch_length))
            .filter(|number| *number > 0)
            .filter_map(|number| {
                let hash = client.block_hash(number).ok()??;
                let events = client.events(&hash).ok()??;
                Some(json!({
                    "number": number,
                    "hash": hex_hash(&hash),
                    "rewards": RewardJson::from_events(&events),
                }))
            })
            .collect();
        let shard_map: Vec<Value> = params
            .as_ref()
            .map(|p| {
                let layers = p.ponw.model.num_layers;
                let mut ranges: Vec<_> =
                    workers.iter().flat_map(|(_, w)| w.shards.clone()).collect();
                ranges.sort();
                ranges.dedup();
                ranges
                    .into_iter()
                    .map(|range| {
                        let serving: Vec<String> = workers
                            .iter()
                            .filter(|(_, w)| w.serves(&range))
                            .map(|(a, _)| crypto::ss58(a))
                            .collect();
                        json!({"layers": range.to_string(), "of": layers, "workers": serving})
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "chain": client.chain_name(),
            "best": HeaderJson::from(&best),
            "bestHash": hex_hash(&best.hash()),
            "finalized": HeaderJson::from(&finalized),
            "finalizedHash": hex_hash(&finalized.hash()),
            "blocks": blocks,
            "payouts": payouts,
            "shards": shard_map,
            "peers": peers,
            "params": params.ok(),
        })
    })
    .await;
    Json(result.unwrap_or_else(|e| json!({"error": e.to_string()})))
}
