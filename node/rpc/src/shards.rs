//! `neuroshard_shards`: who serves which layer range of the chain's model, from this node's
//! live DHT view (see `neuroshard_serving::directory`). A node without networking reports its own shards
//! only through the explorer; here it answers with an empty provider list.

use crate::error::client_error;
use crate::types::{ShardProviderJson, ShardsJson};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::crypto;
use neuroshard_serving::ShardNetwork;
use std::sync::Arc;

#[rpc(server)]
pub trait ShardsApi {
    #[method(name = "neuroshard_shards")]
    fn neuroshard_shards(&self) -> RpcResult<ShardsJson>;
}

pub struct Shards {
    pub client: Arc<Client>,
    pub net: Option<ShardNetwork>,
}

impl ShardsApiServer for Shards {
    fn neuroshard_shards(&self) -> RpcResult<ShardsJson> {
        let model = self.client.params().map_err(client_error)?.ponw.model;
        let providers = match &self.net {
            None => Vec::new(),
            Some(net) => net
                .directory
                .snapshot()
                .into_iter()
                .map(|p| ShardProviderJson {
                    peer_id: p.peer.to_string(),
                    account: crypto::ss58(&p.account),
                    shards: p.shards.iter().map(|s| s.to_string()).collect(),
                    active_sessions: p.active_sessions,
                    tokens_per_second: p.throughput_milli as f64 / 1000.0,
                    rtt_ms: p.rtt_ms,
                    local: p.local,
                    addresses: p.addresses.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
        };
        Ok(ShardsJson {
            model: hex_hash(&model.hash),
            num_layers: model.num_layers,
            providers,
        })
    }
}
