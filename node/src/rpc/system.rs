//! `system_*`: who this node is and how it is doing, Substrate-style. Peers are always
//! empty until networking lands; `system_accountNextIndex` counts pooled extrinsics so
//! a wallet can submit several in a row.

use crate::client::Client;
use crate::rpc::types::{parse_account, HealthJson};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
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

    #[method(name = "system_health")]
    fn system_health(&self) -> RpcResult<HealthJson>;

    #[method(name = "system_peers")]
    fn system_peers(&self) -> RpcResult<Vec<serde_json::Value>>;

    #[method(name = "system_accountNextIndex")]
    fn system_account_next_index(&self, account: String) -> RpcResult<u64>;
}

pub struct System {
    pub client: Arc<Client>,
}

impl SystemApiServer for System {
    fn system_name(&self) -> RpcResult<String> {
        Ok(NODE_NAME.to_string())
    }

    fn system_version(&self) -> RpcResult<String> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    fn system_chain(&self) -> RpcResult<String> {
        Ok(self.client.chain_name().to_string())
    }

    fn system_health(&self) -> RpcResult<HealthJson> {
        Ok(HealthJson {
            peers: 0,
            is_syncing: false,
            should_have_peers: false,
        })
    }

    fn system_peers(&self) -> RpcResult<Vec<serde_json::Value>> {
        Ok(Vec::new())
    }

    fn system_account_next_index(&self, account: String) -> RpcResult<u64> {
        let who = parse_account(&account)?;
        Ok(self.client.next_nonce(&who)?)
    }
}
