//! Historical state over JSON-RPC against a real node: on an archive node every state
//! method answers from the block asked for (a balance and a nonce that changed since,
//! a read proof against that block's state root, the block's events); the same
//! database reopened with `--state-pruning 2` refuses the discarded states with
//! Substrate's "State already discarded" error and still reads the kept ones.

use neuroshard_primitives::{BalancesCall, Call, UNIT};
use neuroshard_tests::chain::{self, account_at};
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `neuroshard run` on the spec and base path in `dir`, with `extra` flags.
fn start(dir: &Path, log: &str, extra: &[&str]) -> NodeProcess {
    let spec = dir.join("spec.json");
    let base = dir.join("base");
    let mut args = vec![
        "run",
        "--chain",
        spec.to_str().unwrap(),
        "--base-path",
        base.to_str().unwrap(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    args.extend_from_slice(extra);
    NodeProcess::start(&args, &dir.join(log)).unwrap()
}

fn hex_key(key: &[u8]) -> String {
    format!("0x{}", hex::encode(key))
}

/// `AccountNonceApi_account_nonce` of `uri` through `state_call` at `at`.
fn nonce_at(rpc: &RpcClient, uri: &str, at: &Value) -> String {
    let who = parity_scale_codec::Encode::encode(&chain::account(uri));
    rpc.call(
        "state_call",
        json!(["AccountNonceApi_account_nonce", hex_key(&who), at]),
    )
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

#[test]
fn state_methods_read_the_block_asked_for_and_pruned_states_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 300, 1000).unwrap();
    std::fs::rename(&spec, dir.path().join("spec.json")).unwrap();
    let node = start(
        dir.path(),
        "archive.log",
        &[
            "--key",
            "//Alice",
            "--validator",
            "--state-pruning",
            "archive",
        ],
    );
    let rpc = node.rpc();
    let amount = 3 * UNIT / 2;
    let call = Call::Balances(BalancesCall::transfer_allow_death {
        dest: chain::account("//Bob"),
        value: amount,
    });
    let (_, included) = chain::submit_and_wait(&rpc, "//Alice", call, TIMEOUT).unwrap();
    // Three more blocks: neither block read below is the head.
    wait_for("three more blocks", TIMEOUT, || {
        Ok((rpc.best_number()? >= included + 3).then_some(()))
    })
    .unwrap();
    let hash_of = |rpc: &RpcClient, n: u64| rpc.call("chain_getBlockHash", json!([n])).unwrap();
    let (before, after) = (hash_of(&rpc, included - 1), hash_of(&rpc, included));
    let ctx = || node.log_text();

    // state_getStorage: Bob's balance before and after the transfer.
    let bob_before = account_at(&rpc, "//Bob", &before).unwrap();
    let bob_after = account_at(&rpc, "//Bob", &after).unwrap();
    assert_eq!(bob_after.free - bob_before.free, amount, "{}", ctx());
    // state_call: Alice's nonce was 0 and is 1 (u32, SCALE).
    assert_eq!(nonce_at(&rpc, "//Alice", &before), "0x00000000");
    assert_eq!(nonce_at(&rpc, "//Alice", &after), "0x01000000");
    // state_queryStorageAt and state_getReadProof name the block and agree with it.
    let key = hex_key(&neuroshard_runtime::storage_keys::account(&chain::account(
        "//Bob",
    )));
    let stored = rpc.call("state_getStorage", json!([key, before])).unwrap();
    let set = rpc
        .call("state_queryStorageAt", json!([[key], before]))
        .unwrap();
    assert_eq!(set, json!([{"block": before, "changes": [[key, stored]]}]));
    let proof = rpc
        .call("state_getReadProof", json!([[key], before]))
        .unwrap();
    let header = rpc.call("chain_getHeader", json!([before])).unwrap();
    assert_eq!(proof["stateRoot"], header["stateRoot"]);
    assert_eq!(proof["proof"][0]["value"], stored);
    // state_getKeysPaged at the old block lists Bob's account under System.Account.
    let prefix = &key[..2 + 64];
    let keys = rpc
        .call("state_getKeysPaged", json!([prefix, 1000, null, before]))
        .unwrap();
    assert!(keys.as_array().unwrap().contains(&json!(key)), "{keys}");
    // neuroshard_events reads the transfer's block's System.Events.
    let events = rpc.call("neuroshard_events", json!([included])).unwrap();
    assert!(
        events.to_string().contains("Transfer"),
        "no transfer in {events}"
    );
    drop(node);

    // The same database as a (non-authoring, so its head stays) node keeping 2 states.
    let node = start(dir.path(), "pruned.log", &["--state-pruning", "2"]);
    let rpc = node.rpc();
    let head = rpc.best_number().unwrap();
    assert!(head >= included + 3);
    let discarded = format!(
        "Client error: UnknownBlock: State already discarded for {}",
        before.as_str().unwrap()
    );
    for (method, params) in [
        ("state_getStorage", json!([key, before])),
        ("state_queryStorageAt", json!([[key], before])),
        ("state_getReadProof", json!([[key], before])),
        ("state_getKeysPaged", json!([prefix, 10, null, before])),
        ("state_getMetadata", json!([before])),
        ("state_call", json!(["Core_version", "0x", before])),
    ] {
        let err = rpc.try_call(method, params).unwrap().unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (4000, discarded.as_str()),
            "{method}"
        );
    }
    let err = rpc
        .try_call("neuroshard_events", json!([included]))
        .unwrap()
        .unwrap_err();
    assert!(err.message.contains("State already discarded"), "{err}");
    // The kept states still read: the head's parent (through the history) and the head,
    // each with its own System.Number.
    let number_key = hex_key(&neuroshard_runtime::system::NUMBER.key());
    for n in [head - 1, head] {
        let at = hash_of(&rpc, n);
        let stored = rpc
            .call("state_getStorage", json!([number_key, at]))
            .unwrap();
        let bytes = hex::decode(stored.as_str().unwrap().trim_start_matches("0x")).unwrap();
        let number: u64 = parity_scale_codec::Decode::decode(&mut bytes.as_slice()).unwrap();
        assert_eq!(number, n);
    }
}
