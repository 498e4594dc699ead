//! `state_call`: the runtime APIs Substrate tools call by name, with SCALE input and
//! output (`Core_version`, `Metadata_metadata`, `Metadata_metadata_at_version`,
//! `Metadata_metadata_versions`, `AccountNonceApi_account_nonce`,
//! `TransactionPaymentApi_query_info`), answered from the
//! state after the block asked for. The APIs and their versions are the ones the runtime
//! version lists (`neuroshard_runtime::metadata::RUNTIME_APIS`); anything else is an
//! error, as on a Substrate node.

use crate::error::{internal, invalid_params};
use jsonrpsee::types::ErrorObjectOwned;
use neuroshard_primitives::{AccountId, SignedExtrinsic};
use neuroshard_runtime::metadata as runtime_metadata;
use neuroshard_runtime::{balances, ReadState};
use parity_scale_codec::{Decode, Encode};

/// Runs runtime API `method` on `input` against `state`; returns the SCALE output.
pub fn call(
    state: &impl ReadState,
    method: &str,
    input: &[u8],
) -> Result<Vec<u8>, ErrorObjectOwned> {
    let runtime_error = |e: neuroshard_runtime::DispatchError| internal(e.to_string());
    match method {
        "Core_version" => Ok(runtime_metadata::version().encode()),
        "Metadata_metadata" => {
            let metadata = runtime_metadata::metadata(state).map_err(runtime_error)?;
            // OpaqueMetadata: the SCALE metadata as a byte vector.
            Ok(metadata.encode().encode())
        }
        "Metadata_metadata_versions" => Ok(runtime_metadata::METADATA_VERSIONS.to_vec().encode()),
        "Metadata_metadata_at_version" => {
            let version = decode_input::<u32>(method, input)?;
            let metadata =
                runtime_metadata::metadata_at_version(state, version).map_err(runtime_error)?;
            Ok(metadata.encode())
        }
        "TransactionPaymentApi_query_info" => {
            let (xt, _len) = decode_input::<(SignedExtrinsic, u32)>(method, input)?;
            let info =
                neuroshard_runtime::payment::query_info(state, &xt).map_err(runtime_error)?;
            Ok(info.encode())
        }
        "AccountNonceApi_account_nonce" => {
            let who = decode_input::<AccountId>(method, input)?;
            let nonce = balances::nonce(state, &who).map_err(|e| internal(e.to_string()))?;
            // Substrate's default `Nonce` (and polkadot.js's `Index`) is a u32.
            let nonce = u32::try_from(nonce)
                .map_err(|_| internal(format!("nonce {nonce} does not fit a u32")))?;
            Ok(nonce.encode())
        }
        other => Err(invalid_params(format!(
            "unknown runtime API call {other:?} (see state_getRuntimeVersion's apis)"
        ))),
    }
}

/// Decodes the whole of `input` as `T`.
fn decode_input<T: Decode>(method: &str, mut input: &[u8]) -> Result<T, ErrorObjectOwned> {
    let value = T::decode(&mut input)
        .map_err(|e| invalid_params(format!("{method}: input does not decode: {e}")))?;
    if !input.is_empty() {
        return Err(invalid_params(format!(
            "{method}: {} bytes of input left over",
            input.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_runtime::StateDb;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let state = StateDb::new();
        assert!(call(&state, "AccountNonceApi_account_nonce", &[1, 2, 3]).is_err());
        assert!(call(&state, "Metadata_metadata_at_version", &[14, 0, 0, 0, 9]).is_err());
        assert!(call(&state, "Nope_nothing", &[]).is_err());
        assert!(call(&state, "TransactionPaymentApi_query_info", &[4, 0x84, 0]).is_err());
        let versions = call(&state, "Metadata_metadata_versions", &[]).unwrap();
        assert_eq!(
            Vec::<u32>::decode(&mut versions.as_slice()).unwrap(),
            vec![14, 15]
        );
        // An account never seen has nonce 0, as a u32.
        let nonce = call(&state, "AccountNonceApi_account_nonce", &[7; 32]).unwrap();
        assert_eq!(nonce, vec![0, 0, 0, 0]);
    }
}
