//! `neuroshard dev`: blocks advance every slot, `chain_subscribeNewHeads` streams them
//! over WebSocket, and bad requests get JSON-RPC errors without hurting the node.

use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use neuroshard_primitives::SignedExtrinsic;
use neuroshard_tests::chain;
use neuroshard_tests::rpc::hex_number;
use neuroshard_tests::{wait_for, NodeProcess};
use parity_scale_codec::Decode;
use serde_json::{json, Value};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_advance_and_new_heads_stream_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let node = tokio::task::spawn_blocking(move || NodeProcess::dev(&path))
        .await
        .unwrap()
        .unwrap();
    let rpc = node.rpc();

    // HTTP: the best number rises.
    let rpc2 = rpc.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("block #2", TIMEOUT, || {
            Ok((rpc2.best_number()? >= 2).then_some(()))
        })
    })
    .await
    .unwrap()
    .unwrap();

    // WebSocket: a subscription yields consecutive headers with valid links.
    let ws = WsClientBuilder::default()
        .build(node.ws_url())
        .await
        .unwrap();
    let mut sub = ws
        .subscribe::<Value, _>(
            "chain_subscribeNewHeads",
            rpc_params![],
            "chain_unsubscribeNewHeads",
        )
        .await
        .unwrap();
    let mut headers = Vec::new();
    while headers.len() < 3 {
        let next = tokio::time::timeout(TIMEOUT, sub.next())
            .await
            .expect("a header within the timeout")
            .expect("subscription open")
            .expect("a header");
        headers.push(next);
    }
    for pair in headers.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(
            hex_number(&b["number"]).unwrap(),
            hex_number(&a["number"]).unwrap() + 1
        );
        assert_eq!(b["parentHash"], chain::header_hash(a).unwrap());
        // The author sits in the digest's PreRuntime item.
        let author = chain::header_of(b).unwrap().author().clone();
        assert_eq!(author, chain::account("//Alice"));
    }
    // The streamed header is what chain_getHeader returns for its hash.
    let last = headers.last().unwrap().clone();
    let fetched = tokio::task::spawn_blocking(move || {
        let hash = chain::header_hash(&last).unwrap();
        // Its hash (blake2-256 of the SCALE header) is the canonical hash at its number.
        assert_eq!(
            rpc.call("chain_getBlockHash", json!([last["number"]]))
                .unwrap(),
            hash
        );
        rpc.call("chain_getHeader", json!([hash])).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(&fetched, headers.last().unwrap());

    // Finalized heads stream too (dev finalises instantly).
    let mut fin = ws
        .subscribe::<Value, _>(
            "chain_subscribeFinalizedHeads",
            rpc_params![],
            "chain_unsubscribeFinalizedHeads",
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(TIMEOUT, fin.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(chain::header_of(&first).unwrap().seal_is_valid());

    // All heads (every imported block) stream the same Substrate-layout headers.
    let mut all = ws
        .subscribe::<Value, _>(
            "chain_subscribeAllHeads",
            rpc_params![],
            "chain_unsubscribeAllHeads",
        )
        .await
        .unwrap();
    let a = tokio::time::timeout(TIMEOUT, all.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let b = tokio::time::timeout(TIMEOUT, all.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(b["parentHash"], chain::header_hash(&a).unwrap());
}

#[test]
fn bad_requests_get_errors_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::dev(dir.path()).unwrap();
    let rpc = node.rpc();
    // The dev node's own miner (//Alice) submits heartbeats and escrow deposits, so
    // "nothing changed" is checked on another account and on what else got pooled.
    let bob = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
    let before = rpc.account(bob).unwrap();

    // Malformed JSON: a parse error, not a crash.
    for body in [
        "{",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":",
        "\u{0}\u{1}garbage",
        "[]",
        "null",
    ] {
        let (_, text) = rpc.post_raw(body).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body:?} -> {text}"));
        assert!(v.get("error").is_some(), "{body:?} -> {text}");
    }

    let cases: &[(&str, Value, i64)] = &[
        // Wrong parameter types.
        ("chain_getHeader", json!([5]), -32602),
        ("chain_getBlockHash", json!([true]), -32602),
        ("chain_getBlockHash", json!(["0xnothex"]), -32602),
        ("neuroshard_account", json!([42]), -32602),
        ("neuroshard_account", json!(["not an address"]), -32602),
        ("neuroshard_rewards", json!([{"a": 1}]), -32602),
        ("state_getStorage", json!(["0xzz"]), -32602),
        ("chain_getBlock", json!(["0x1234"]), -32602),
        ("author_submitExtrinsic", json!([17]), -32602),
        ("author_submitExtrinsic", json!([]), -32602),
        // Garbage extrinsic bytes.
        ("author_submitExtrinsic", json!(["0xdeadbeef"]), 1001),
        ("author_submitExtrinsic", json!(["not hex at all"]), 1001),
        (
            "author_submitExtrinsic",
            json!([format!("0x{}", "ff".repeat(300))]),
            1001,
        ),
        // Unknown method.
        ("no_such_method", json!([]), -32601),
    ];
    for (method, params, code) in cases {
        let err = rpc
            .try_call(method, params.clone())
            .unwrap()
            .expect_err(&format!("{method}({params}) should fail"));
        assert_eq!(err.code, *code, "{method}({params}): {err}");
        assert!(!err.message.is_empty());
    }

    // Unknown blocks are `null`, not errors; unknown state is an error naming the block.
    let unknown = format!("0x{}", "00".repeat(32));
    assert_eq!(
        rpc.call("chain_getBlockHash", json!([999_999_999]))
            .unwrap(),
        Value::Null
    );
    assert_eq!(
        rpc.call("chain_getHeader", json!([unknown])).unwrap(),
        Value::Null
    );
    assert_eq!(
        rpc.call("chain_getBlock", json!([unknown])).unwrap(),
        Value::Null
    );
    let err = rpc
        .try_call("state_getStorage", json!(["0x00", unknown]))
        .unwrap()
        .unwrap_err();
    assert!(err.message.contains("unknown"), "{err}");

    // Still up, still producing, nothing changed, nothing pooled.
    let number = rpc.best_number().unwrap();
    wait_for("a new block", TIMEOUT, || {
        Ok((rpc.best_number()? > number).then_some(()))
    })
    .unwrap();
    assert!(node.is_running());
    assert_eq!(rpc.account(bob).unwrap(), before);
    let pending = rpc.call("author_pendingExtrinsics", json!([])).unwrap();
    for xt in pending.as_array().unwrap() {
        let bytes = hex::decode(xt.as_str().unwrap().trim_start_matches("0x")).unwrap();
        let xt = SignedExtrinsic::decode(&mut bytes.as_slice()).unwrap();
        assert_eq!(
            xt.signer,
            chain::account("//Alice"),
            "only the node's own miner pools"
        );
    }
    assert_eq!(
        rpc.call("system_name", json!([])).unwrap(),
        "NeuroShard Node"
    );
    assert_eq!(
        rpc.call("system_chain", json!([])).unwrap(),
        "NeuroShard Development"
    );
    assert_eq!(rpc.call("system_peers", json!([])).unwrap(), json!([]));
    assert_eq!(
        rpc.call("system_properties", json!([])).unwrap(),
        json!({"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "NSHD"})
    );
}
