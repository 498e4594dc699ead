//! Chain helpers for tests: the genesis hash, signing and submitting extrinsics,
//! finding the block that included one, and paid inference work (receipts of the dev
//! worker //Alice for the client //Bob).

use crate::rpc::{hex_number, RpcClient};
use crate::wait_for;
use anyhow::{anyhow, Context};
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    blake2_256, AccountId, Call, Hash, LayerRange, PonwCall, Receipt, ReceiptBody, SignedExtrinsic,
    UNIT,
};
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

/// A base-unit amount from RPC JSON (a decimal string); panics on anything else.
pub fn amount(v: &serde_json::Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// The account record of `uri` in the state after block `hash` (0x hex), read with
/// `state_getStorage` so that several accounts can be read at one block.
pub fn account_at(
    rpc: &RpcClient,
    uri: &str,
    hash: &serde_json::Value,
) -> anyhow::Result<neuroshard_runtime::balances::AccountData> {
    let key = neuroshard_runtime::storage_keys::account(&account(uri));
    let value = rpc.call(
        "state_getStorage",
        json!([format!("0x{}", hex::encode(key)), hash]),
    )?;
    let Some(text) = value.as_str() else {
        return Ok(Default::default());
    };
    let bytes = hex::decode(text.trim_start_matches("0x"))?;
    Ok(neuroshard_runtime::balances::AccountData::from_stored(
        &bytes,
    )?)
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

/// The header in a `chain_getHeader` answer (Substrate's JSON), decoded: slot, author,
/// VRF signature and seal come from its digest logs.
pub fn header_of(v: &serde_json::Value) -> anyhow::Result<neuroshard_primitives::Header> {
    let json: neuroshard_rpc::types::HeaderJson = serde_json::from_value(v.clone())?;
    json.to_header()
}

/// The block hash of a `chain_getHeader` answer (blake2-256 of the SCALE header), as a
/// 0x string the way the RPC spells hashes.
pub fn header_hash(v: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    Ok(json!(format!("0x{}", hex::encode(header_of(v)?.hash()))))
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

/// Signs `call` as `uri`, submits it and waits for its block; returns the extrinsic's
/// hex and the block number.
pub fn submit_and_wait(
    rpc: &RpcClient,
    uri: &str,
    call: Call,
    timeout: Duration,
) -> anyhow::Result<(String, u64)> {
    let xt = to_hex(&sign(rpc, uri, call)?);
    let from = rpc.best_number()?;
    rpc.call("author_submitExtrinsic", json!([xt]))?;
    let (number, _) = wait_included(rpc, &xt, from, timeout)?;
    Ok((xt, number))
}

/// A receipt for 30 positions through `layers` of `model`, run by //Alice (the dev
/// worker) for //Bob (the client), signed by both.
pub fn work_receipt(model: Hash, epoch: u32, layers: (u16, u16), seq: u32) -> Receipt {
    let worker = keypair_from_uri("//Alice").expect("dev key");
    let client = keypair_from_uri("//Bob").expect("dev key");
    let body = ReceiptBody {
        worker: account("//Alice"),
        client: account("//Bob"),
        model,
        layers: LayerRange::new(layers.0, layers.1).expect("valid range"),
        session: [7; 16],
        epoch,
        seq,
        position_start: 0,
        position_end: 30,
        commitment: blake2_256(format!("activations {layers:?}").as_bytes()),
        input_commitment: blake2_256(format!("inputs {layers:?}").as_bytes()),
        adapter: None,
    };
    Receipt::sign(body, &worker, &client)
}

/// Work submitted by [`submit_dev_work`] and when the chain pays it.
pub struct DevWork {
    pub receipts: Vec<Receipt>,
    /// The block that included the receipts.
    pub included: u64,
    /// The block whose start settled them (their check window closed): from then on
    /// their tokens count in that block's epoch.
    pub settled: u64,
    /// The first block of the next epoch, which pays the tokens.
    pub payout: u64,
}

/// Paid work on a chain whose epochs last `epoch_length` blocks: //Bob locks escrow,
/// then //Charlie submits //Alice's receipts for 30 tokens through each of the dev
/// model's three shards in the current epoch. Their earnings are held until their check
/// window closes, then paid at the next epoch boundary ([`DevWork`]).
pub fn submit_dev_work(
    rpc: &RpcClient,
    epoch_length: u64,
    timeout: Duration,
) -> anyhow::Result<DevWork> {
    let params = rpc.call("neuroshard_params", json!([]))?;
    let model = parse_hash(&params["ponw"]["model"]["hash"])?;
    let window = params["ponw"]["spot_check_blocks"]
        .as_u64()
        .context("spot_check_blocks")?;
    let deposit = Call::Ponw(PonwCall::DepositEscrow { amount: 100 * UNIT });
    submit_and_wait(rpc, "//Bob", deposit, timeout)?;
    let epoch = neuroshard_runtime::system::epoch_of(rpc.best_number()? + 1, epoch_length);
    let receipts: Vec<Receipt> = [(0, 10), (10, 20), (20, 30)]
        .into_iter()
        .map(|layers| work_receipt(model, epoch, layers, 0))
        .collect();
    let call = Call::Ponw(PonwCall::SubmitReceipts {
        receipts: receipts.clone(),
    });
    let (_, included) = submit_and_wait(rpc, "//Charlie", call, timeout)?;
    let settled = included + window.max(neuroshard_runtime::ponw::settlement::DRAW_DELAY + 1);
    Ok(DevWork {
        receipts,
        included,
        settled,
        payout: (settled / epoch_length + 1) * epoch_length,
    })
}
