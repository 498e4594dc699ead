//! JSON-RPC error objects. Codes follow Substrate where it has them (1001 bad extrinsic
//! format, 1010 invalid transaction, 1011 unknown transaction, 1013 already imported,
//! 1014 conflicting nonce, 1016 pool full), plus the JSON-RPC standard ones for bad
//! parameters (-32602) and internal failures (-32603). Messages are for humans: they
//! say what was wrong with the request.

use jsonrpsee::types::error::{INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE};
use jsonrpsee::types::ErrorObjectOwned;
use neuroshard_client::pool::PoolError;
use neuroshard_client::{ClientError, SubmitError};
use neuroshard_runtime::TransactionError;

/// The extrinsic bytes do not decode.
pub const BAD_FORMAT: i32 = 1001;
/// The runtime refused the extrinsic (Substrate's `InvalidTransaction`).
pub const INVALID_TRANSACTION: i32 = 1010;
/// The runtime could not decide (Substrate's `UnknownTransaction`).
pub const UNKNOWN_TRANSACTION: i32 = 1011;
/// The same extrinsic is already pooled.
pub const ALREADY_IMPORTED: i32 = 1013;
/// Another pooled extrinsic of the sender has this nonce.
pub const NONCE_TAKEN: i32 = 1014;
/// The pool is full.
pub const POOL_FULL: i32 = 1016;

pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS_CODE, message, None::<()>)
}

pub fn internal(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, message, None::<()>)
}

pub fn bad_format(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(BAD_FORMAT, message, None::<()>)
}

/// Code and prefix of Substrate's state RPC errors (`sc_rpc_api::state::error`), which
/// a query at a pruned block gets: "Client error: UnknownBlock: State already
/// discarded for 0x...".
const STATE_ERROR: i32 = 4000;

/// A chain client failure as an RPC error (a pruned state is the caller's).
pub fn client_error(e: ClientError) -> ErrorObjectOwned {
    match e {
        ClientError::StateDiscarded(_) => ErrorObjectOwned::owned(
            STATE_ERROR,
            format!("Client error: UnknownBlock: {e}"),
            None::<()>,
        ),
        other => internal(other.to_string()),
    }
}

/// A refused extrinsic as an RPC error, as Substrate's pool reports it: code 1010
/// "Invalid Transaction" (1011 "Unknown Transaction" when the state could not be read)
/// with the `InvalidTransaction` variant's own text as `data` ("Transaction has a bad
/// signature", "Transaction is outdated", ...), which polkadot.js shows as
/// `1010: Invalid Transaction: Transaction has a bad signature`. NeuroShard's own
/// explanation follows the Substrate text in parentheses. Pool refusals keep their
/// codes (1013 already imported, 1014 nonce taken, 1016 pool full).
pub fn submit_error(e: SubmitError) -> ErrorObjectOwned {
    let detail = e.to_string();
    match &e {
        SubmitError::Invalid(invalid) => {
            let (code, message, reason) = substrate_reason(invalid);
            ErrorObjectOwned::owned(code, message, Some(format!("{reason} ({detail})")))
        }
        SubmitError::Pool(pool) => {
            let code = match pool {
                PoolError::AlreadyImported(_) => ALREADY_IMPORTED,
                PoolError::NonceTaken(_) => NONCE_TAKEN,
                PoolError::Full(_) => POOL_FULL,
            };
            ErrorObjectOwned::owned(code, detail, None::<()>)
        }
    }
}

/// Substrate's code, message and `InvalidTransaction` / `UnknownTransaction` text for
/// a runtime refusal.
fn substrate_reason(e: &TransactionError) -> (i32, &'static str, &'static str) {
    const INVALID: &str = "Invalid Transaction";
    let reason = match e {
        TransactionError::BadSignature => "Transaction has a bad signature",
        TransactionError::ZeroSender => "Invalid signing address",
        TransactionError::AncientBirthBlock { .. } => "Transaction has an ancient birth block",
        TransactionError::StaleNonce { .. } => "Transaction is outdated",
        TransactionError::FutureNonce { .. } => "Transaction will be valid in the future",
        TransactionError::TooLarge { .. } => "Transaction would exhaust the block limits",
        TransactionError::CannotPayFee(_) => {
            "Inability to pay some fees (e.g. account balance too low)"
        }
        TransactionError::Call(_) | TransactionError::Refuted(_) => {
            "Transaction call is not expected"
        }
        TransactionError::Storage(_) => {
            return (
                UNKNOWN_TRANSACTION,
                "Unknown Transaction",
                "Could not lookup information required to validate the transaction",
            )
        }
    };
    (INVALID_TRANSACTION, INVALID, reason)
}
