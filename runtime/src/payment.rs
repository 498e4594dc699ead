//! What an extrinsic pays, as Substrate's `TransactionPayment` reports it: the fee is
//! `base_fee + byte_fee x encoded length` (NeuroShard meters no weight: a block's limit
//! is its size), plus the tip the signer adds; heartbeats, liveness reports and the
//! capacity calls are free.
//! `TransactionPaymentApi_query_info` and `payment_queryInfo` answer [`query_info`], the
//! fee without the tip (Substrate's `partial_fee`), which is exactly what is charged.

use crate::error::DispatchError;
use neuroshard_balances as balances;
use neuroshard_primitives::dispatch::Weight;
use neuroshard_primitives::{Balance, Call, DispatchClass, PonwCall, SignedExtrinsic};
use neuroshard_support::ReadState;
use parity_scale_codec::Encode;

/// Whether the call pays the transaction fee. Heartbeats, liveness reports and the
/// capacity calls are free: a heartbeat applies only for a registered worker holding the
/// model, once per minute; a liveness report only from a validator that records a probe
/// not yet recorded; a capacity claim once per registered worker and minute, in the
/// minute's window; an opening once per audit, by its worker; a verdict once per drawn
/// auditor. None can be used to spam (a free call that fails is not included).
pub fn pays_fee(call: &Call) -> bool {
    !matches!(
        call,
        Call::Ponw(
            PonwCall::Heartbeat { .. }
                | PonwCall::ReportLiveness { .. }
                | PonwCall::ClaimCapacity { .. }
                | PonwCall::OpenCapacity { .. }
                | PonwCall::CapacityVerdict { .. }
        )
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

/// Substrate's `RuntimeDispatchInfo` with a two-dimensional weight
/// (`sp_weights::weight_v2::Weight`, the type the metadata describes, which
/// `@polkadot/api` then decodes `TransactionPaymentApi_query_info`'s answer with;
/// NeuroShard meters no weight and reports zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, scale_info::TypeInfo)]
pub struct RuntimeDispatchInfo {
    pub weight: Weight,
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
        weight: Weight::default(),
        class: if pays_fee(&xt.call) {
            DispatchClass::Normal
        } else {
            DispatchClass::Operational
        },
        partial_fee: partial_fee(state, xt)?,
    })
}
