//! `author_*`: submitting signed extrinsics (hex SCALE `SignedExtrinsic`) to the pool
//! and listing pending ones. Bytes that do not decode, or decode with bytes left over,
//! get error 1001; the runtime's verdict (bad signature 1002, stale nonce, cannot pay
//! fee... 1010) and the pool's (duplicate 1013, nonce taken 1014, full 1016) come back
//! with their message. A refused extrinsic changes nothing.

use crate::error::bad_format;
use crate::error::submit_error;
use crate::types::parse_hex;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::SignedExtrinsic;
use parity_scale_codec::{Decode, Encode};
use std::sync::Arc;

#[rpc(server)]
pub trait AuthorApi {
    #[method(name = "author_submitExtrinsic")]
    fn submit_extrinsic(&self, extrinsic: String) -> RpcResult<String>;

    #[method(name = "author_pendingExtrinsics")]
    fn pending_extrinsics(&self) -> RpcResult<Vec<String>>;
}

pub struct Author {
    pub client: Arc<Client>,
}

/// Decodes a hex SCALE extrinsic, refusing trailing bytes.
pub fn decode_extrinsic(text: &str) -> RpcResult<SignedExtrinsic> {
    let bytes = parse_hex("extrinsic", text).map_err(|e| bad_format(e.message().to_string()))?;
    let mut input = bytes.as_slice();
    let xt = SignedExtrinsic::decode(&mut input).map_err(|e| {
        bad_format(format!(
            "extrinsic bytes do not decode as a SignedExtrinsic: {e}"
        ))
    })?;
    if !input.is_empty() {
        return Err(bad_format(format!(
            "extrinsic has {} trailing bytes after a valid encoding",
            input.len()
        )));
    }
    Ok(xt)
}

impl AuthorApiServer for Author {
    fn submit_extrinsic(&self, extrinsic: String) -> RpcResult<String> {
        let xt = decode_extrinsic(&extrinsic)?;
        let hash = self.client.submit(xt).map_err(submit_error)?;
        Ok(hex_hash(&hash))
    }

    fn pending_extrinsics(&self) -> RpcResult<Vec<String>> {
        Ok(self
            .client
            .pending()
            .iter()
            .map(|x| format!("0x{}", hex::encode(x.encode())))
            .collect())
    }
}
