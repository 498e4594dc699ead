//! `neuroshard_*`: wallet and explorer views in our own terms — an account's balances,
//! the rewards a block paid (from its `RewardPaid` events), all of a block's events and
//! the runtime parameters.

use crate::error::client_error;
use crate::error::invalid_params;
use crate::types::{parse_account, parse_block_ref, AccountJson, BlockRef, RewardJson};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::Client;
use std::sync::Arc;

#[rpc(server)]
pub trait NeuroshardApi {
    /// `{free, reserved, bonded, nonce, workerBond, slashed, retiredBond, heldEarnings, owed, exposure}` of an SS58 address
    /// (balances in base units).
    #[method(name = "neuroshard_account")]
    fn account(&self, address: String) -> RpcResult<AccountJson>;

    /// Rewards paid in a block (hash or number; default: the best block).
    #[method(name = "neuroshard_rewards")]
    fn rewards(&self, at: Option<serde_json::Value>) -> RpcResult<Vec<RewardJson>>;

    /// Every event of a block (hash or number; default: the best block), as JSON objects
    /// with a stable `event` name (see `rpc::events`).
    #[method(name = "neuroshard_events")]
    fn events(&self, at: Option<serde_json::Value>) -> RpcResult<Vec<serde_json::Value>>;

    /// The runtime parameters at the best block.
    #[method(name = "neuroshard_params")]
    fn params(&self) -> RpcResult<serde_json::Value>;
}

pub struct Neuroshard {
    pub client: Arc<Client>,
}

impl Neuroshard {
    /// The events of the block `at` names (hash or number; default: the best block).
    fn block_events(
        &self,
        at: Option<serde_json::Value>,
    ) -> RpcResult<Vec<neuroshard_primitives::Event>> {
        let hash = match at {
            None | Some(serde_json::Value::Null) => self.client.best_header().hash(),
            Some(v) => match parse_block_ref(&v)? {
                BlockRef::Hash(h) => h,
                BlockRef::Number(n) => self
                    .client
                    .block_hash(n)
                    .map_err(client_error)?
                    .ok_or_else(|| invalid_params(format!("no block #{n} yet")))?,
            },
        };
        self.client
            .events(&hash)
            .map_err(client_error)?
            .ok_or_else(|| {
                invalid_params(format!(
                    "unknown block {}",
                    neuroshard_client::hex_hash(&hash)
                ))
            })
    }
}

impl NeuroshardApiServer for Neuroshard {
    fn account(&self, address: String) -> RpcResult<AccountJson> {
        let who = parse_account(&address)?;
        let info = self.client.account(&who).map_err(client_error)?;
        Ok(AccountJson {
            free: info.free.to_string(),
            reserved: info.reserved.to_string(),
            bonded: info.bonded.to_string(),
            nonce: info.nonce,
            worker_bond: info.worker_bond.to_string(),
            slashed: info.slashed.to_string(),
            retired_bond: info.retired_bond.to_string(),
            held_earnings: info.held_earnings.to_string(),
            owed: info.owed.to_string(),
            exposure: info.exposure.to_string(),
        })
    }

    fn rewards(&self, at: Option<serde_json::Value>) -> RpcResult<Vec<RewardJson>> {
        Ok(RewardJson::from_events(&self.block_events(at)?))
    }

    fn events(&self, at: Option<serde_json::Value>) -> RpcResult<Vec<serde_json::Value>> {
        Ok(self
            .block_events(at)?
            .iter()
            .map(crate::events::event_json)
            .collect())
    }

    fn params(&self) -> RpcResult<serde_json::Value> {
        let params = self.client.params().map_err(client_error)?;
        serde_json::to_value(&params).map_err(|e| crate::error::internal(e.to_string()))
    }
}
