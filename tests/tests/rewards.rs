//! Proof of Neural Work through the real node: inference receipts (signed by worker
//! and client) submitted with `author_submitExtrinsic` are paid at the epoch boundary
//! by `reward = layer_tokens x token_reward / num_layers + uptime x uptime_reward`,
//! reported per account by `neuroshard_rewards`, and minted into the worker's balance.
//! (The client pays fees from an escrow it deposited first.)
//! A replayed receipt is refused with a JSON-RPC error.

use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{blake2_256, Call, LayerRange, PonwCall, Receipt, ReceiptBody, UNIT};
use neuroshard_runtime::balances::AccountData;
use neuroshard_runtime::storage_keys;
use neuroshard_tests::chain::{self, address, parse_hash, to_hex, wait_included};
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use parity_scale_codec::Decode;
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);
const EPOCH: u64 = 6;

fn receipt(
    model: neuroshard_primitives::Hash,
    epoch: u32,
    layers: (u16, u16),
    seq: u32,
) -> Receipt {
    let worker = keypair_from_uri("//Alice").unwrap();
    let client = keypair_from_uri("//Bob").unwrap();
    let body = ReceiptBody {
        worker: chain::account("//Alice"),
        client: chain::account("//Bob"),
        model,
        layers: LayerRange::new(layers.0, layers.1).unwrap(),
        session: [7; 16],
        epoch,
        seq,
        position_start: 0,
        position_end: 30,
        commitment: blake2_256(format!("activations {layers:?}").as_bytes()),
    };
    Receipt::sign(body, &worker, &client)
}

/// Alice's free balance in the state after block `hash`, via state_getStorage.
fn free_at(rpc: &RpcClient, hash: &Value) -> u128 {
    let key = storage_keys::account(&chain::account("//Alice"));
    let value = rpc
        .call(
            "state_getStorage",
            json!([format!("0x{}", hex::encode(key)), hash]),
        )
        .unwrap();
    let bytes = hex::decode(value.as_str().unwrap().trim_start_matches("0x")).unwrap();
    AccountData::decode(&mut bytes.as_slice()).unwrap().free
}

#[test]
fn receipts_are_paid_by_the_formula_at_the_epoch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 300, EPOCH).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let params = rpc.call("neuroshard_params", json!([])).unwrap();
    let model = parse_hash(&params["ponw"]["model"]["hash"]).unwrap();
    let num_layers = params["ponw"]["model"]["num_layers"].as_u64().unwrap() as u128;
    let token_reward: u128 = params["ponw"]["token_reward"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Bob, the inference client, locks escrow that pays for the work he counter-signs.
    let deposit = Call::Ponw(PonwCall::DepositEscrow { amount: 100 * UNIT });
    let xt = chain::sign(&rpc, "//Bob", deposit).unwrap();
    let from = rpc.best_number().unwrap();
    rpc.call("author_submitExtrinsic", json!([to_hex(&xt)]))
        .unwrap();
    wait_included(&rpc, &to_hex(&xt), from, TIMEOUT).unwrap();

    // Alice (the dev worker, serving 0-10, 10-20 and 20-30) ran all three stages for
    // 30 tokens; Bob (the client) counter-signed. Charlie submits the batch.
    let epoch = ((rpc.best_number().unwrap() + 1) / EPOCH) as u32;
    let receipts = vec![
        receipt(model, epoch, (0, 10), 0),
        receipt(model, epoch, (10, 20), 0),
        receipt(model, epoch, (20, 30), 0),
    ];
    let call = Call::Ponw(PonwCall::SubmitReceipts {
        receipts: receipts.clone(),
    });
    let xt = chain::sign(&rpc, "//Charlie", call).unwrap();
    let from = rpc.best_number().unwrap();
    rpc.call("author_submitExtrinsic", json!([to_hex(&xt)]))
        .unwrap();
    let (included, _) = wait_included(&rpc, &to_hex(&xt), from, TIMEOUT).unwrap();

    // Replaying the same receipts (new extrinsic, same seq) is refused.
    let replay = chain::sign(
        &rpc,
        "//Charlie",
        Call::Ponw(PonwCall::SubmitReceipts { receipts }),
    )
    .unwrap();
    let err = rpc
        .try_call("author_submitExtrinsic", json!([to_hex(&replay)]))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1010, "{err}");
    assert!(err.message.contains("receipt #0 rejected"), "{err}");

    // The work is paid in the first block of the next epoch.
    let payout = (included / EPOCH + 1) * EPOCH;
    wait_for("the epoch boundary", TIMEOUT, || {
        Ok((rpc.best_number()? >= payout).then_some(()))
    })
    .unwrap();
    let rewards = rpc.call("neuroshard_rewards", json!([payout])).unwrap();
    let entries = rewards.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{rewards}");
    let entry = &entries[0];
    let layer_tokens = 3 * 30 * 10;
    let expected = layer_tokens as u128 * token_reward / num_layers;
    // 30 tokens through the whole model x 0.1 NSHD = 3 NSHD with the dev parameters.
    assert_eq!(expected, 3_000_000_000_000);
    assert_eq!(entry["account"], address("//Alice"));
    assert_eq!(entry["tokens"], 90);
    assert_eq!(entry["layer_tokens"], layer_tokens);
    assert_eq!(entry["uptime_minutes"], 0);
    assert_eq!(entry["reward"], expected.to_string());
    assert_eq!(entry["epoch"], included / EPOCH);

    // The same answer by block hash; other blocks pay nothing.
    let payout_hash = rpc.call("chain_getBlockHash", json!([payout])).unwrap();
    assert_eq!(
        rpc.call("neuroshard_rewards", json!([payout_hash]))
            .unwrap(),
        rewards
    );
    assert_eq!(
        rpc.call("neuroshard_rewards", json!([payout - 1])).unwrap(),
        json!([])
    );

    // Minted into Alice's free balance exactly at that block.
    let before_hash = rpc.call("chain_getBlockHash", json!([payout - 1])).unwrap();
    assert_eq!(
        free_at(&rpc, &payout_hash) - free_at(&rpc, &before_hash),
        expected
    );

    // A read proof of Alice's account verifies against the payout block's state root.
    let key = storage_keys::account(&chain::account("//Alice"));
    let proof = rpc
        .call(
            "state_getReadProof",
            json!([[format!("0x{}", hex::encode(&key))], payout_hash]),
        )
        .unwrap();
    let header = rpc.call("chain_getHeader", json!([payout_hash])).unwrap();
    assert_eq!(proof["stateRoot"], header["stateRoot"]);
    let entry = &proof["proof"][0];
    let unhex = |v: &Value| hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap();
    let read_proof =
        neuroshard_support::ReadProof::decode(&mut unhex(&entry["proof"]).as_slice()).unwrap();
    assert!(neuroshard_support::verify_read_proof(
        &parse_hash(&header["stateRoot"]).unwrap(),
        &key,
        &unhex(&entry["value"]),
        &read_proof
    ));
}
