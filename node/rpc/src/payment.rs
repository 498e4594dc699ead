//! `payment_queryInfo`: what an extrinsic would pay, as Substrate's transaction-payment
//! RPC answers it (`partialFee` is the fee without the tip; NeuroShard meters no weight,
//! so `weight` is zero). The same figure comes through `state_call`
//! `TransactionPaymentApi_query_info` ([`crate::runtime_calls`]). It is exactly what a
//! block charges (plus the tip): see `neuroshard_runtime::payment`.

use crate::author::decode_extrinsic;
use crate::error::internal;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::Client;
use neuroshard_primitives::DispatchClass;
use neuroshard_runtime::payment::{query_info, RuntimeDispatchInfo};
use serde::Serialize;
use std::sync::Arc;

#[rpc(server)]
pub trait PaymentApi {
    /// The payment information of a hex SCALE extrinsic (its signature may be a
    /// placeholder) against the state after block `at` (the head when `None`).
    #[method(name = "payment_queryInfo")]
    fn query_info(&self, extrinsic: String, at: Option<String>) -> RpcResult<DispatchInfoJson>;
}

/// `RuntimeDispatchInfo` with a v1 weight (one number, the v2 weight's `ref_time`), as
/// `@polkadot/api` decodes this RPC's answer (`RuntimeDispatchInfoV1`); the runtime
/// API answers the v2 layout.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DispatchInfoJson {
    pub weight: u64,
    pub class: &'static str,
    /// Decimal base units, as a string (u128 does not fit a JSON number).
    pub partial_fee: String,
}

impl From<RuntimeDispatchInfo> for DispatchInfoJson {
    fn from(info: RuntimeDispatchInfo) -> Self {
        Self {
            weight: info.weight.ref_time,
            class: match info.class {
                DispatchClass::Normal => "normal",
                DispatchClass::Operational => "operational",
                DispatchClass::Mandatory => "mandatory",
            },
            partial_fee: info.partial_fee.to_string(),
        }
    }
}

pub struct Payment {
    pub client: Arc<Client>,
}

impl PaymentApiServer for Payment {
    fn query_info(&self, extrinsic: String, at: Option<String>) -> RpcResult<DispatchInfoJson> {
        let xt = decode_extrinsic(&extrinsic)?;
        let info =
            crate::state::with_state_at(&self.client, at, |state, _| query_info(state, &xt))?;
        Ok(info.map_err(|e| internal(e.to_string()))?.into())
    }
}
