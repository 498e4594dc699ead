//! Proof of Neural Work through the real node: inference receipts (signed by worker
//! and client) submitted with `author_submitExtrinsic` are paid at the epoch boundary
//! by `reward = layer_tokens x token_reward / num_layers + uptime x uptime_reward`,
//! reported per account by `neuroshard_rewards`, and minted into the worker's balance.
//! (The client pays fees from an escrow it deposited first.)
//! A replayed receipt is refused with a JSON-RPC error.

use neuroshard_primitives::{Call, PonwCall};
use neuroshard_runtime::storage_keys;
use neuroshard_tests::chain::{self, address, parse_hash, to_hex};
use neuroshard_tests::spec::write_unchecked_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use parity_scale_codec::Decode;
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);
const EPOCH: u64 = 6;

/// Alice's free balance in the state after block `hash`.
fn free_at(rpc: &RpcClient, hash: &Value) -> u128 {
    chain::account_at(rpc, "//Alice", hash).unwrap().free
}

#[test]
fn receipts_are_paid_by_the_formula_at_the_epoch_boundary() {
    let dir = tempfile::tempdir().unwrap();
    // Synthetic receipts: tests/tests/spot_checks.rs covers the spot-checked path.
    let spec = write_unchecked_dev_spec(dir.path(), 300, EPOCH).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let params = rpc.call("neuroshard_params", json!([])).unwrap();
    let num_layers = params["ponw"]["model"]["num_layers"].as_u64().unwrap() as u128;
    let token_reward: u128 = params["ponw"]["token_reward"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Bob, the inference client, locks escrow that pays for the work he counter-signs;
    // Alice (the dev worker, serving 0-10, 10-20 and 20-30) ran all three stages for
    // 30 tokens; Charlie submits the batch.
    let work = chain::submit_dev_work(&rpc, EPOCH, TIMEOUT).unwrap();
    let receipts = work.receipts.clone();

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
    assert!(err.to_string().contains("receipt #0 rejected"), "{err}");

    // The work is settled when its check window closes and paid in the first block of
    // the next epoch.
    let payout = work.payout;
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
    assert_eq!(entry["epoch"], work.settled / EPOCH);

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
