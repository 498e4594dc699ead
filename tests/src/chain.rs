//! Chain helpers for tests: the genesis hash, signing and submitting extrinsics, and
//! finding the block that included one.

use crate::rpc::{hex_number, RpcClient};
use crate::wait_for;
use anyhow::{anyhow, Context};
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{AccountId, Call, Hash, SignedExtrinsic};
use parity_scale_codec::Encode;
use serde_json::json;
use sp_core::Pair as _;
use std::time::Duration;

/// The account of a dev secret URI such as `//Bob`.
pub fn account(uri: &str) -> AccountId {
    keypair_from_uri(uri).expect("valid URI").public().into()
}

/// The SS58 address of a dev secret URI.
pub fn address(uri: &str) -> String {
    neuroshard_primitives::crypto::ss58(&account(uri))
}

/// Parses a 0x hash.
pub fn parse_hash(v: &serde_json::Value) -> anyhow::Result<Hash> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow!("hash is not a string: {v}"))?;
    let bytes = hex::decode(s.trim_start_matches("0x"))?;
    anyhow::ensure!(bytes.len() == 32, "hash of {} bytes", bytes.len());
    Ok(Hash::from_slice(&bytes))
}

/// The chain's genesis hash (what extrinsics are signed for).
pub fn genesis(rpc: &RpcClient) -> anyhow::Result<Hash> {
    parse_hash(&rpc.call("chain_getBlockHash", json!([0]))?)
}

/// Signs `call` as `uri` with the sender's next nonce from the node.
pub fn sign(rpc: &RpcClient, uri: &str, call: Call) -> anyhow::Result<SignedExtrinsic> {
    let pair = keypair_from_uri(uri)?;
    let nonce = rpc
        .call("system_accountNextIndex", json!([address(uri)]))?
        .as_u64()
        .context("nonce")?;
    Ok(SignedExtrinsic::sign(&pair, &genesis(rpc)?, nonce, call))
}

/// 0x hex of the SCALE encoding.
pub fn to_hex(xt: &SignedExtrinsic) -> String {
    format!("0x{}", hex::encode(xt.encode()))
}

/// Waits until a block at or after `from` contains `xt_hex`; returns its number and hash.
pub fn wait_included(
    rpc: &RpcClient,
    xt_hex: &str,
    from: u64,
    timeout: Duration,
) -> anyhow::Result<(u64, String)> {
    let mut next = from;
    wait_for("the extrinsic to be included", timeout, || {
        while next <= rpc.best_number()? {
            let hash = rpc.call("chain_getBlockHash", json!([next]))?;
            let block = rpc.call("chain_getBlock", json!([hash]))?;
            let extrinsics = block["block"]["extrinsics"]
                .as_array()
                .ok_or_else(|| anyhow!("no extrinsics in {block}"))?;
            if extrinsics.iter().any(|x| x == xt_hex) {
                let number = hex_number(&block["block"]["header"]["number"])?;
                return Ok(Some((
                    number,
                    hash.as_str().unwrap_or_default().to_string(),
                )));
            }
            next += 1;
        }
        Ok(None)
    })
}
