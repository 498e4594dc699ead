//! What an extrinsic pays, as Substrate's `TransactionPayment` reports it: the fee is
//! `base_fee + byte_fee x encoded length` (NeuroShard meters no weight: a block's limit
//! is its size), plus the tip the signer adds; heartbeats and liveness reports are free.
//! `TransactionPaymentApi_query_info` and `payment_queryInfo` answer [`query_info`], the
//! fee without the tip (Substrate's `partial_fee`), which is exactly what is charged.

use crate::error::DispatchError;
use neuroshard_balances as balances;
use neuroshard_primitives::{Balance, Call, PonwCall, SignedExtrinsic};
use neuroshard_support::ReadState;
use parity_scale_codec::Encode;

/// Whether the call pays the transaction fee. Heartbeats and liveness reports are free:
/// a heartbeat applies only for a registered worker holding the model, once per minute,
/// and a liveness report only from a validator that records a probe not yet recorded,
/// so neither can be used to spam.
pub fn pays_fee(call: &Call) -> bool {
    !matches!(
        call,
        Call::Ponw(PonwCall::Heartbeat { .. } | PonwCall::ReportLiveness { .. })
    )
}

/// The fee of `xt` without its tip (0 for free calls).
pub fn partial_fee(state: &impl ReadState, xt: &SignedExtrinsic) -> Result<Balance, DispatchError> {
    if !pays_fee(&xt.call) {
        return Ok(0);
    }
    let p = balances::params(state)?;
    Ok(balances::fee(&p, xt.encoded_size()))
}

/// Everything `xt` pays before its call runs: the fee and the tip (free calls pay
/// neither).
pub fn fee(state: &impl ReadState, xt: &SignedExtrinsic) -> Result<Balance, DispatchError> {
    if !pays_fee(&xt.call) {
        return Ok(0);
    }
    Ok(partial_fee(state, xt)?.saturating_add(xt.tip))
}

/// Substrate's `DispatchClass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode)]
pub enum DispatchClass {
    Normal,
    Operational,
    Mandatory,
}

/// Substrate's `RuntimeDispatchInfo` in the layout of `TransactionPaymentApi` version 1
/// (a weight is one u64; NeuroShard meters none and reports 0), which is what
/// `@polkadot/api` decodes for a runtime whose metadata has no v2 `Weight` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode)]
pub struct RuntimeDispatchInfo {
    pub weight: u64,
    pub class: DispatchClass,
    pub partial_fee: Balance,
}

/// The payment information of `xt` (its signature is not checked: wallets ask with a
/// placeholder signature of the real one's size).
pub fn query_info(
    state: &impl ReadState,
    xt: &SignedExtrinsic,
) -> Result<RuntimeDispatchInfo, DispatchError> {
    Ok(RuntimeDispatchInfo {
        weight: 0,
        class: if pays_fee(&xt.call) {
            DispatchClass::Normal
        } else {
            DispatchClass::Operational
        },
        partial_fee: partial_fee(state, xt)?,
    })
}
