//! `author_*`: submitting signed extrinsics (hex SCALE `SignedExtrinsic`) to the pool
//! and listing pending ones. Bytes that do not decode, or decode with bytes left over,
//! get error 1001; the runtime's verdict comes back as Substrate's (1010 "Invalid
//! Transaction" with `data` "Transaction has a bad signature", "Transaction is
//! outdated", ... see [`crate::error::submit_error`]) and the pool's (duplicate 1013, nonce taken 1014, full 1016) come back
//! with their message. A refused extrinsic changes nothing.
//! `author_submitAndWatchExtrinsic` also follows it into a final block ([`crate::watch`]).

use crate::error::bad_format;
use crate::error::submit_error;
use crate::types::parse_hex;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::PendingSubscriptionSink;
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

    /// Submits like `author_submitExtrinsic`, then reports the extrinsic's way into a
    /// final block (see [`crate::watch`]).
    #[subscription(name = "author_submitAndWatchExtrinsic" => "author_extrinsicUpdate", unsubscribe = "author_unwatchExtrinsic", item = serde_json::Value)]
    async fn submit_and_watch_extrinsic(&self, extrinsic: String) -> SubscriptionResult;
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

#[jsonrpsee::core::async_trait]
impl AuthorApiServer for Author {
    fn submit_extrinsic(&self, extrinsic: String) -> RpcResult<String> {
        let xt = decode_extrinsic(&extrinsic)?;
        let hash = self.client.submit(xt).map_err(submit_error)?;
        Ok(hex_hash(&hash))
    }

    async fn submit_and_watch_extrinsic(
        &self,
        pending: PendingSubscriptionSink,
        extrinsic: String,
    ) -> SubscriptionResult {
        let from = self.client.best_header().number;
        let submitted = decode_extrinsic(&extrinsic)
            .and_then(|xt| self.client.submit(xt).map_err(submit_error));
        let hash = match submitted {
            Ok(hash) => hash,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        crate::watch::follow(self.client.clone(), hash, from, |update| {
            let sink = sink.clone();
            async move {
                match serde_json::value::to_raw_value(&update) {
                    Ok(json) => sink.send(json).await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        Ok(())
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
