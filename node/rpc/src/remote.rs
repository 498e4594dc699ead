//! A thin typed JSON-RPC client (jsonrpsee HTTP) for the wallet commands: the few
//! calls `tx` and `balance` need, with errors that name the node URL and the method.

use crate::types::{AccountJson, HeaderJson, ReadProofJson, SignedBlockJson};
use anyhow::{anyhow, Context};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use neuroshard_primitives::{BlockNumber, Hash};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A connection to one node.
pub struct NodeRpc {
    url: String,
    client: HttpClient,
}

impl NodeRpc {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .with_context(|| format!("bad RPC URL {url:?}"))?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: ArrayParams,
    ) -> anyhow::Result<T> {
        self.client
            .request(method, params)
            .await
            .map_err(|e| anyhow!("{method} at {}: {e}", self.url))
    }

    pub async fn genesis_hash(&self) -> anyhow::Result<Hash> {
        let text: Option<String> = self.call("chain_getBlockHash", rpc_params![0]).await?;
        let text = text.ok_or_else(|| anyhow!("the node at {} has no genesis block", self.url))?;
        parse_hash(&text)
    }

    pub async fn next_index(&self, ss58: &str) -> anyhow::Result<u64> {
        self.call("system_accountNextIndex", rpc_params![ss58])
            .await
    }

    pub async fn submit(&self, xt_hex: &str) -> anyhow::Result<String> {
        self.call("author_submitExtrinsic", rpc_params![xt_hex])
            .await
    }

    pub async fn best_number(&self) -> anyhow::Result<BlockNumber> {
        let header: Option<HeaderJson> = self.call("chain_getHeader", rpc_params![]).await?;
        let header = header.ok_or_else(|| anyhow!("node has no best header"))?;
        parse_number(&header.number)
    }

    /// The canonical block at `number`, if there is one yet.
    pub async fn block_at(&self, number: BlockNumber) -> anyhow::Result<Option<SignedBlockJson>> {
        let hash: Option<String> = self.call("chain_getBlockHash", rpc_params![number]).await?;
        match hash {
            None => Ok(None),
            Some(hash) => self.call("chain_getBlock", rpc_params![hash]).await,
        }
    }

    /// The events of block `number` (`neuroshard_events`, JSON as explorers get them).
    pub async fn events(&self, number: BlockNumber) -> anyhow::Result<Vec<serde_json::Value>> {
        self.call("neuroshard_events", rpc_params![number]).await
    }

    pub async fn account(&self, address: &str) -> anyhow::Result<AccountJson> {
        self.call("neuroshard_account", rpc_params![address]).await
    }

    /// The finalized head's hash.
    pub async fn finalized_head(&self) -> anyhow::Result<Hash> {
        let text: String = self.call("chain_getFinalizedHead", rpc_params![]).await?;
        parse_hash(&text)
    }

    pub async fn header(&self, hash: &Hash) -> anyhow::Result<HeaderJson> {
        let hex = format!("0x{}", hex::encode(hash));
        let header: Option<HeaderJson> = self.call("chain_getHeader", rpc_params![&hex]).await?;
        header.ok_or_else(|| anyhow!("the node at {} does not know block {hex}", self.url))
    }

    /// `state_getReadProof` for `keys` at block `at`.
    pub async fn read_proof(&self, keys: &[Vec<u8>], at: &Hash) -> anyhow::Result<ReadProofJson> {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("0x{}", hex::encode(k)))
            .collect();
        let at = format!("0x{}", hex::encode(at));
        self.call("state_getReadProof", rpc_params![keys, at]).await
    }
}

fn parse_hash(text: &str) -> anyhow::Result<Hash> {
    let bytes = hex::decode(text.trim_start_matches("0x")).context("node sent a bad hash")?;
    if bytes.len() != 32 {
        return Err(anyhow!("node sent a hash of {} bytes", bytes.len()));
    }
    Ok(Hash::from_slice(&bytes))
}

/// Parses a header's hex `number`.
pub fn parse_number(text: &str) -> anyhow::Result<BlockNumber> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .with_context(|| format!("node sent a bad block number {text:?}"))
}
