//! `chain_*`: headers, blocks, the canonical index and head subscriptions. A missing
//! block answers `null` (like Substrate); a malformed hash or number is an
//! invalid-params error.

use crate::error::client_error;
use crate::types::{parse_hash, parse_number, HeaderJson, SignedBlockJson, FINALITY_ENGINE_ID};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::PendingSubscriptionSink;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::{Hash, Header};
use std::sync::Arc;
use tokio::sync::broadcast;

#[rpc(server)]
pub trait ChainApi {
    /// The header of `hash`, or of the best block.
    #[method(name = "chain_getHeader")]
    fn get_header(&self, hash: Option<String>) -> RpcResult<Option<HeaderJson>>;

    /// The block `hash`, or the best block.
    #[method(name = "chain_getBlock")]
    fn get_block(&self, hash: Option<String>) -> RpcResult<Option<SignedBlockJson>>;

    /// The canonical hash at `number` (integer, decimal or hex string), or the best hash.
    #[method(name = "chain_getBlockHash")]
    fn get_block_hash(&self, number: Option<serde_json::Value>) -> RpcResult<Option<String>>;

    #[method(name = "chain_getFinalizedHead")]
    fn get_finalized_head(&self) -> RpcResult<String>;

    #[subscription(name = "chain_subscribeNewHeads" => "chain_newHead", unsubscribe = "chain_unsubscribeNewHeads", item = HeaderJson)]
    async fn subscribe_new_heads(&self) -> SubscriptionResult;

    #[subscription(name = "chain_subscribeFinalizedHeads" => "chain_finalizedHead", unsubscribe = "chain_unsubscribeFinalizedHeads", item = HeaderJson)]
    async fn subscribe_finalized_heads(&self) -> SubscriptionResult;

    /// Every imported block's header. The node imports blocks only onto its best chain
    /// (a longer fork is reverted to and imported block by block), so this is the
    /// new-heads stream.
    #[subscription(name = "chain_subscribeAllHeads" => "chain_allHead", unsubscribe = "chain_unsubscribeAllHeads", item = HeaderJson)]
    async fn subscribe_all_heads(&self) -> SubscriptionResult;
}

pub struct Chain {
    pub client: Arc<Client>,
}

impl Chain {
    fn resolve(&self, hash: Option<String>) -> RpcResult<Hash> {
        match hash {
            Some(h) => parse_hash(&h),
            None => Ok(self.client.best_header().hash()),
        }
    }
}

/// Sends `first`, then every header from `rx`, until the subscriber goes away.
async fn stream_headers(
    pending: PendingSubscriptionSink,
    first: Header,
    mut rx: broadcast::Receiver<Header>,
) -> SubscriptionResult {
    let sink = pending.accept().await?;
    let json = serde_json::value::to_raw_value(&HeaderJson::from(&first))?;
    sink.send(json).await?;
    let first = first.hash();
    loop {
        tokio::select! {
            _ = sink.closed() => return Ok(()),
            next = rx.recv() => match next {
                // `rx` was opened before `first` was read: a block imported in between
                // arrives on both, and is sent once.
                Ok(header) if header.hash() == first => continue,
                Ok(header) => {
                    let json = serde_json::value::to_raw_value(&HeaderJson::from(&header))?;
                    sink.send(json).await?;
                }
                // A slow subscriber skips headers rather than stalling the node.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

#[jsonrpsee::core::async_trait]
impl ChainApiServer for Chain {
    fn get_header(&self, hash: Option<String>) -> RpcResult<Option<HeaderJson>> {
        let hash = self.resolve(hash)?;
        Ok(self
            .client
            .header(&hash)
            .map_err(client_error)?
            .map(|h| HeaderJson::from(&h)))
    }

    fn get_block(&self, hash: Option<String>) -> RpcResult<Option<SignedBlockJson>> {
        let hash = self.resolve(hash)?;
        let justification = self.client.justification(&hash).map_err(client_error)?;
        Ok(self.client.block(&hash).map_err(client_error)?.map(|b| {
            let mut json = SignedBlockJson::from(&b);
            // Substrate's shape: a list of (engine, proof); ours is one SCALE
            // `finality::Justification` (the votes that finalized the block), hex.
            json.justifications = justification.map(|j| {
                vec![(
                    format!("0x{}", hex::encode(FINALITY_ENGINE_ID)),
                    format!("0x{}", hex::encode(j)),
                )]
            });
            json
        }))
    }

    fn get_block_hash(&self, number: Option<serde_json::Value>) -> RpcResult<Option<String>> {
        let number = match number {
            None | Some(serde_json::Value::Null) => {
                return Ok(Some(hex_hash(&self.client.best_header().hash())))
            }
            Some(v) => parse_number(&v)?,
        };
        Ok(self
            .client
            .block_hash(number)
            .map_err(client_error)?
            .map(|h| hex_hash(&h)))
    }

    fn get_finalized_head(&self) -> RpcResult<String> {
        Ok(hex_hash(&self.client.finalized_header().hash()))
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let rx = self.client.subscribe_new_heads();
        stream_headers(pending, self.client.best_header(), rx).await
    }

    async fn subscribe_finalized_heads(
        &self,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        let rx = self.client.subscribe_finalized_heads();
        stream_headers(pending, self.client.finalized_header(), rx).await
    }

    async fn subscribe_all_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let rx = self.client.subscribe_new_heads();
        stream_headers(pending, self.client.best_header(), rx).await
    }
}
