//! `state_*`: raw storage reads and Merkle read proofs against a block's state root.
//! Keys are hex; `neuroshard_runtime::storage_keys` documents how to compute them
//! (Substrate's `twox`-free variant: blake2_128 prefixes). States of blocks up to
//! `MAX_STATE_DEPTH` behind the head are rebuilt from the store's undo records.

use crate::error::client_error;
use crate::types::{parse_hash, parse_hex, KeyProofJson, ReadProofJson};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::Hash;
use neuroshard_runtime::{ReadState, StateDb};
use parity_scale_codec::Encode;
use std::sync::Arc;

/// Most keys one `state_getReadProof` call may ask for.
const MAX_PROOF_KEYS: usize = 1024;

#[rpc(server)]
pub trait StateApi {
    #[method(name = "state_getStorage")]
    fn get_storage(&self, key: String, at: Option<String>) -> RpcResult<Option<String>>;

    #[method(name = "state_getReadProof")]
    fn get_read_proof(&self, keys: Vec<String>, at: Option<String>) -> RpcResult<ReadProofJson>;
}

pub struct State {
    pub client: Arc<Client>,
}

impl State {
    fn state_at(&self, at: Option<String>) -> RpcResult<(Hash, StateDb)> {
        let hash = match at {
            Some(h) => parse_hash(&h)?,
            None => self.client.best_header().hash(),
        };
        match self.client.state_at(&hash).map_err(client_error)? {
            Some(state) => Ok((hash, state)),
            None => Err(crate::error::invalid_params(format!(
                "unknown or non-canonical block {}",
                hex_hash(&hash)
            ))),
        }
    }
}

impl StateApiServer for State {
    fn get_storage(&self, key: String, at: Option<String>) -> RpcResult<Option<String>> {
        let key = parse_hex("storage key", &key)?;
        let value = match at {
            None => self.client.storage(&key),
            Some(at) => self.state_at(Some(at))?.1.get(&key),
        };
        Ok(value.map(|v| format!("0x{}", hex::encode(v))))
    }

    fn get_read_proof(&self, keys: Vec<String>, at: Option<String>) -> RpcResult<ReadProofJson> {
        if keys.len() > MAX_PROOF_KEYS {
            return Err(crate::error::invalid_params(format!(
                "at most {MAX_PROOF_KEYS} keys per call"
            )));
        }
        let keys = keys
            .iter()
            .map(|k| parse_hex("storage key", k))
            .collect::<Result<Vec<_>, _>>()?;
        let (hash, state) = self.state_at(at)?;
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
}
