//! JSON-RPC error objects. Codes follow Substrate where it has them (1001 bad extrinsic
//! format, 1002 verification failed, 1010 invalid transaction, 1013 already imported,
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
/// The extrinsic's signature does not verify.
pub const VERIFICATION_FAILED: i32 = 1002;
/// The runtime refused the extrinsic.
pub const INVALID_TRANSACTION: i32 = 1010;
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

/// A chain client failure as an RPC error (a state too old to read is the caller's).
pub fn client_error(e: ClientError) -> ErrorObjectOwned {
    match e {
        ClientError::StateTooOld { .. } => invalid_params(e.to_string()),
        other => internal(other.to_string()),
    }
}

/// A refused extrinsic as an RPC error with Substrate's code for the reason.
pub fn submit_error(e: SubmitError) -> ErrorObjectOwned {
    let message = e.to_string();
    let code = match &e {
        SubmitError::Invalid(TransactionError::BadSignature) => VERIFICATION_FAILED,
        SubmitError::Invalid(_) => INVALID_TRANSACTION,
        SubmitError::Pool(PoolError::AlreadyImported(_)) => ALREADY_IMPORTED,
        SubmitError::Pool(PoolError::NonceTaken(_)) => NONCE_TAKEN,
        SubmitError::Pool(PoolError::Full(_)) => POOL_FULL,
    };
    ErrorObjectOwned::owned(code, message, None::<()>)
}
