//! `system_*`: who this node is and how it is doing, Substrate-style (`system_properties`
//! gives the token and address format wallets need). `system_peers` and
//! `system_health` read the live libp2p view (empty for a node without networking, such
//! as `dev`); `system_accountNextIndex` counts pooled extrinsics so a wallet can submit
//! several in a row.

use crate::error::client_error;
use crate::types::{parse_account, HealthJson, PeerJson};
use jsonrpsee::core::async_trait;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::Client;
use neuroshard_serving::ShardNetwork;
use std::sync::Arc;

/// The node implementation name `system_name` reports.
pub const NODE_NAME: &str = "NeuroShard Node";

#[rpc(server)]
pub trait SystemApi {
    #[method(name = "system_name")]
    fn system_name(&self) -> RpcResult<String>;

    #[method(name = "system_version")]
    fn system_version(&self) -> RpcResult<String>;

    #[method(name = "system_chain")]
    fn system_chain(&self) -> RpcResult<String>;

    /// The token and address format, as Substrate wallets read them.
    #[method(name = "system_properties")]
    fn system_properties(&self) -> RpcResult<serde_json::Value>;

    #[method(name = "system_health")]
    async fn system_health(&self) -> RpcResult<HealthJson>;

    #[method(name = "system_peers")]
    async fn system_peers(&self) -> RpcResult<Vec<PeerJson>>;

    #[method(name = "system_accountNextIndex")]
    fn system_account_next_index(&self, account: String) -> RpcResult<u64>;
}

pub struct System {
    pub client: Arc<Client>,
    pub net: Option<ShardNetwork>,
}

impl System {
    async fn peers(&self) -> Vec<PeerJson> {
        peer_list(self.net.as_ref()).await
    }
}

/// The connected peers as JSON (empty for a node without networking); `system_peers`
/// and the explorer show this.
pub async fn peer_list(net: Option<&ShardNetwork>) -> Vec<PeerJson> {
    let Some(net) = net else {
        return Vec::new();
    };
    net.network
        .peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| PeerJson {
            peer_id: p.peer.to_string(),
            addresses: p.addrs.iter().map(|a| a.to_string()).collect(),
            agent: p.agent,
            rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
            score: p.score,
            link: p.link.map(|l| l.as_str().to_string()),
            relay: p.relay.map(|r| r.to_string()),
            link_secs: p.link_age.map(|d| d.as_secs()),
        })
        .collect()
}

#[async_trait]
impl SystemApiServer for System {
    fn system_name(&self) -> RpcResult<String> {
        Ok(NODE_NAME.to_string())
    }

    fn system_version(&self) -> RpcResult<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    fn system_properties(&self) -> RpcResult<serde_json::Value> {
        use neuroshard_primitives::{crypto::SS58_PREFIX, units::DECIMALS, units::TOKEN_SYMBOL};
        Ok(serde_json::json!({
            "ss58Format": SS58_PREFIX,
            "tokenDecimals": DECIMALS,
            "tokenSymbol": TOKEN_SYMBOL,
        }))
    }

    fn system_chain(&self) -> RpcResult<String> {
        Ok(self.client.chain_name().to_string())
    }

    async fn system_health(&self) -> RpcResult<HealthJson> {
        Ok(HealthJson {
            peers: self.peers().await.len() as u64,
            is_syncing: false,
            should_have_peers: self.net.is_some(),
        })
    }

    async fn system_peers(&self) -> RpcResult<Vec<PeerJson>> {
        Ok(self.peers().await)
    }

    fn system_account_next_index(&self, account: String) -> RpcResult<u64> {
        let who = parse_account(&account)?;
        self.client.next_nonce(&who).map_err(client_error)
    }
}
