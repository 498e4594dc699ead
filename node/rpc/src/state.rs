//! `state_*`: raw storage reads, key listing and Merkle read proofs against a block's
//! state root, the runtime's version and metadata, and runtime API calls
//! ([`crate::runtime_calls`]). Keys are hex, in Substrate's layout (`twox128(pallet) ++
//! twox128(item) ++ blake2_128_concat(key)`, see the metadata), so Substrate tools
//! compute them. With a block hash every method answers from THAT block's state: the
//! head's in memory, an older kept block's through the store's version history
//! (`neuroshard_client::history`); a pruned block's is Substrate's "State already
//! discarded" error (code 4000).

use crate::error::{client_error, internal};
use crate::types::{
    parse_hash, parse_hex, KeyProofJson, ReadProofJson, RuntimeVersionJson, StorageChangeSetJson,
};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::PendingSubscriptionSink;
use neuroshard_client::history::StateView;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::Hash;
use neuroshard_runtime::{ReadState, StateDb};
use parity_scale_codec::Encode;
use std::sync::Arc;

/// Most keys one `state_getReadProof`, `state_queryStorageAt` or `state_subscribeStorage`
/// call may name.
const MAX_PROOF_KEYS: usize = 1024;
/// Most keys one `state_getKeysPaged` page holds (Substrate's limit).
const MAX_KEYS_PAGE: u32 = 1000;

#[rpc(server)]
pub trait StateApi {
    #[method(name = "state_getStorage")]
    fn get_storage(&self, key: String, at: Option<String>) -> RpcResult<Option<String>>;

    /// The values of `keys` in the state after block `at` (the head when `None`), as
    /// one change set: what `@polkadot/api` reads storage with.
    #[method(name = "state_queryStorageAt")]
    fn query_storage_at(
        &self,
        keys: Vec<String>,
        at: Option<String>,
    ) -> RpcResult<Vec<StorageChangeSetJson>>;

    #[method(name = "state_getReadProof")]
    fn get_read_proof(&self, keys: Vec<String>, at: Option<String>) -> RpcResult<ReadProofJson>;

    /// Up to `count` keys starting with `prefix`, after `start_key`, in key order.
    #[method(name = "state_getKeysPaged")]
    fn get_keys_paged(
        &self,
        prefix: Option<String>,
        count: u32,
        start_key: Option<String>,
        at: Option<String>,
    ) -> RpcResult<Vec<String>>;

    /// The SCALE `RuntimeMetadataPrefixed` (V14), hex.
    #[method(name = "state_getMetadata")]
    fn get_metadata(&self, at: Option<String>) -> RpcResult<String>;

    #[method(name = "state_getRuntimeVersion")]
    fn get_runtime_version(&self, at: Option<String>) -> RpcResult<RuntimeVersionJson>;

    /// A runtime API call: `method` ("Metadata_metadata", ...) on SCALE `data`, hex.
    #[method(name = "state_call")]
    fn call(&self, method: String, data: String, at: Option<String>) -> RpcResult<String>;

    /// The values of `keys` now (one change set), then after each new best block the
    /// keys whose value changed: how `@polkadot/api` watches balances and nonces.
    /// Subscribing to every key (no `keys`) is refused.
    #[subscription(name = "state_subscribeStorage" => "state_storage", unsubscribe = "state_unsubscribeStorage", item = StorageChangeSetJson)]
    async fn subscribe_storage(&self, keys: Option<Vec<String>>) -> SubscriptionResult;

    /// The runtime version now; a new one would follow on a runtime upgrade, which this
    /// chain does not have (the runtime is the node's), so the subscription stays quiet.
    #[subscription(name = "state_subscribeRuntimeVersion" => "state_runtimeVersion", unsubscribe = "state_unsubscribeRuntimeVersion", item = RuntimeVersionJson)]
    async fn subscribe_runtime_version(&self) -> SubscriptionResult;
}

pub struct State {
    pub client: Arc<Client>,
}

/// The state a query reads: the head's in memory, or an older kept block's view.
pub(crate) enum AtState<'a> {
    Head(&'a StateDb),
    Kept(&'a StateView),
}

impl ReadState for AtState<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Head(state) => state.get(key),
            Self::Kept(view) => view.get(key),
        }
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self {
            Self::Head(state) => state.scan_prefix(prefix),
            Self::Kept(view) => view.scan_prefix(prefix),
        }
    }
}

fn unknown_block(hash: &Hash) -> jsonrpsee::types::ErrorObjectOwned {
    crate::error::invalid_params(format!("unknown or non-canonical block {}", hex_hash(hash)))
}

/// Runs `f` on the state after block `at` (hex hash; the head when `None`) and that
/// block's hash.
pub(crate) fn with_state_at<T>(
    client: &Client,
    at: Option<String>,
    f: impl FnOnce(&AtState<'_>, Hash) -> T,
) -> RpcResult<T> {
    let hash = at.map(|h| parse_hash(&h)).transpose()?;
    match hash.filter(|h| *h != client.best_header().hash()) {
        None => Ok(client.with_best_state(|state, head| f(&AtState::Head(state), head.hash()))),
        Some(hash) => {
            let view = client
                .state_view(&hash)
                .map_err(client_error)?
                .ok_or_else(|| unknown_block(&hash))?;
            let out = f(&AtState::Kept(&view), hash);
            view.check().map_err(|e| client_error(e.into()))?;
            Ok(out)
        }
    }
}

impl State {
    fn with_state<T>(
        &self,
        at: Option<String>,
        f: impl FnOnce(&AtState<'_>, Hash) -> T,
    ) -> RpcResult<T> {
        with_state_at(&self.client, at, f)
    }

    /// The whole state after block `at` (Merkle proofs need every leaf).
    fn full_state_at(&self, at: Option<String>) -> RpcResult<(Hash, StateDb)> {
        let hash = match at {
            Some(h) => parse_hash(&h)?,
            None => self.client.best_header().hash(),
        };
        match self.client.state_at(&hash).map_err(client_error)? {
            Some(state) => Ok((hash, state)),
            None => Err(unknown_block(&hash)),
        }
    }
}

/// Hex storage keys, at most [`MAX_PROOF_KEYS`] of them.
fn parse_keys(keys: &[String]) -> RpcResult<Vec<Vec<u8>>> {
    if keys.len() > MAX_PROOF_KEYS {
        return Err(crate::error::invalid_params(format!(
            "at most {MAX_PROOF_KEYS} keys per call"
        )));
    }
    keys.iter().map(|k| parse_hex("storage key", k)).collect()
}

/// The keys a storage subscription watches: named, at most [`MAX_PROOF_KEYS`].
fn watched_keys(keys: Option<Vec<String>>) -> RpcResult<Vec<Vec<u8>>> {
    let keys = keys.filter(|k| !k.is_empty()).ok_or_else(|| {
        crate::error::invalid_params(
            "name the storage keys to watch (watching every key is not supported)",
        )
    })?;
    parse_keys(&keys)
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

#[jsonrpsee::core::async_trait]
impl StateApiServer for State {
    fn get_storage(&self, key: String, at: Option<String>) -> RpcResult<Option<String>> {
        let key = parse_hex("storage key", &key)?;
        let value = self.with_state(at, |state, _| state.get(&key))?;
        Ok(value.map(|v| hex(&v)))
    }

    fn query_storage_at(
        &self,
        keys: Vec<String>,
        at: Option<String>,
    ) -> RpcResult<Vec<StorageChangeSetJson>> {
        let keys = parse_keys(&keys)?;
        self.with_state(at, |state, block| {
            let changes = keys
                .into_iter()
                .map(|key| (hex(&key), state.get(&key).map(|v| hex(&v))))
                .collect();
            vec![StorageChangeSetJson {
                block: hex_hash(&block),
                changes,
            }]
        })
    }

    fn get_read_proof(&self, keys: Vec<String>, at: Option<String>) -> RpcResult<ReadProofJson> {
        let keys = parse_keys(&keys)?;
        let (hash, state) = self.full_state_at(at)?;
        let proof = keys
            .into_iter()
            .map(|key| KeyProofJson {
                value: state.get(&key).map(|v| format!("0x{}", hex::encode(v))),
                proof: state
                    .read_proof(&key)
                    .map(|p| format!("0x{}", hex::encode(p.encode()))),
                key: format!("0x{}", hex::encode(&key)),
            })
            .collect();
        Ok(ReadProofJson {
            at: hex_hash(&hash),
            state_root: hex_hash(&state.root()),
            proof,
        })
    }

    fn get_keys_paged(
        &self,
        prefix: Option<String>,
        count: u32,
        start_key: Option<String>,
        at: Option<String>,
    ) -> RpcResult<Vec<String>> {
        let prefix = match prefix {
            Some(p) => parse_hex("key prefix", &p)?,
            None => Vec::new(),
        };
        let start = start_key.map(|k| parse_hex("start key", &k)).transpose()?;
        let count = count.min(MAX_KEYS_PAGE) as usize;
        self.with_state(at, |state, _| {
            state
                .scan_prefix(&prefix)
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| start.as_deref().is_none_or(|s| key.as_slice() > s))
                .take(count)
                .map(|key| hex(&key))
                .collect()
        })
    }

    fn get_metadata(&self, at: Option<String>) -> RpcResult<String> {
        let metadata =
            self.with_state(at, |state, _| neuroshard_runtime::metadata::metadata(state))?;
        Ok(hex(&metadata
            .map_err(|e| internal(e.to_string()))?
            .encode()))
    }

    fn get_runtime_version(&self, at: Option<String>) -> RpcResult<RuntimeVersionJson> {
        // The runtime is the node's (no upgrades), but the block must be a kept one.
        self.with_state(at, |_, _| ())?;
        Ok(RuntimeVersionJson::from(
            &neuroshard_runtime::metadata::version(),
        ))
    }

    fn call(&self, method: String, data: String, at: Option<String>) -> RpcResult<String> {
        let input = parse_hex("call data", &data)?;
        let output = self.with_state(at, |state, _| {
            crate::runtime_calls::call(state, &method, &input)
        })?;
        Ok(hex(&output?))
    }

    async fn subscribe_storage(
        &self,
        pending: PendingSubscriptionSink,
        keys: Option<Vec<String>>,
    ) -> SubscriptionResult {
        let keys = match watched_keys(keys) {
            Ok(keys) => keys,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let mut heads = self.client.subscribe_new_heads();
        let sink = pending.accept().await?;
        let mut last: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut first = true;
        loop {
            let (block, values) = self.client.with_best_state(|state, head| {
                let values: Vec<_> = keys.iter().map(|k| state.get(k)).collect();
                (head.hash(), values)
            });
            let changes: Vec<_> = keys
                .iter()
                .zip(values.iter().zip(&last))
                .filter(|(_, (now, before))| first || now != before)
                .map(|(k, (now, _))| (hex(k), now.as_ref().map(|v| hex(v))))
                .collect();
            if !changes.is_empty() {
                let set = StorageChangeSetJson {
                    block: hex_hash(&block),
                    changes,
                };
                sink.send(serde_json::value::to_raw_value(&set)?).await?;
            }
            (last, first) = (values, false);
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                next = heads.recv() => match next {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    async fn subscribe_runtime_version(
        &self,
        pending: PendingSubscriptionSink,
    ) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let version = RuntimeVersionJson::from(&neuroshard_runtime::metadata::version());
        sink.send(serde_json::value::to_raw_value(&version)?)
            .await?;
        sink.closed().await;
        Ok(())
    }
}
