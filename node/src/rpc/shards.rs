//! `neuroshard_shards`: who serves which layer range of the chain's model, from this node's
//! live DHT view (see `p2p::directory`). A node without networking reports its own shards
//! only through the explorer; here it answers with an empty provider list.

use crate::client::{hex_hash, Client};
use crate::p2p::P2p;
use crate::rpc::types::{ShardProviderJson, ShardsJson};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_primitives::crypto;
use std::sync::Arc;

#[rpc(server)]
pub trait ShardsApi {
    #[method(name = "neuroshard_shards")]
    fn neuroshard_shards(&self) -> RpcResult<ShardsJson>;
}

pub struct Shards {
    pub client: Arc<Client>,
    pub p2p: Option<P2p>,
}

impl ShardsApiServer for Shards {
    fn neuroshard_shards(&self) -> RpcResult<ShardsJson> {
        let model = self.client.params()?.ponw.model;
        let providers = match &self.p2p {
            None => Vec::new(),
            Some(p2p) => p2p
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
