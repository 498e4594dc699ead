//! Spot checks through the real node and the real model: a validator serving every shard
//! of SmolLM2-135M with every receipt drawn for a check (`spot_check_permill` = 1e6).
//! - Honest: each receipt of a generation is re-run by the node's spot checker, passes,
//!   and is credited; the epoch pays `layer_tokens x 0.1 / 30 + uptime x 1.0` exactly.
//! - Cheating (`--fault-skip-work`: the shards return their input instead of running
//!   their layers): the checks fail (each failing verdict is confirmed by a second
//!   round; this chain has one validator, so it is drawn again), the worker's bond is
//!   slashed, every fee it held goes back to the client, the worker is deregistered, and
//!   no token reward is ever paid.

use neuroshard_tests::chain::{address, amount};
use neuroshard_tests::http::request;
use neuroshard_tests::spec::write_spec_with;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::json;
use std::time::Duration;

const UNIT: u128 = 1_000_000_000_000;
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
const EPOCH: u64 = 8;

fn start(dir: &std::path::Path, fault: Option<&str>) -> NodeProcess {
    let spec = write_spec_with(dir, "dev", 500, EPOCH, |params| {
        params["ponw"]["spot_check_permill"] = 1_000_000.into();
        params["ponw"]["spot_check_blocks"] = 40.into();
    })
    .unwrap();
    let spec = spec.to_str().unwrap();
    let base = dir.to_str().unwrap();
    let mut args = vec![
        "run",
        "--chain",
        spec,
        "--base-path",
        base,
        "--key",
        "//Alice",
        "--validator",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--shards",
        "0-10,10-20,20-30",
    ];
    if let Some(permill) = fault {
        args.extend(["--fault-skip-work", permill]);
    }
    let node = NodeProcess::start(&args, &dir.join("node.log")).unwrap();
    wait_for("the model to load", MODEL_TIMEOUT, || {
        let r = request(node.api_port(), "GET", "/v1/models", None)?;
        Ok((r.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    node
}

fn complete(node: &NodeProcess) {
    let body = json!({
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 16,
        "temperature": 0,
    });
    let r = request(
        node.api_port(),
        "POST",
        "/v1/chat/completions",
        Some(&body.to_string()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn honest_receipts_pass_their_checks_and_are_paid_by_the_formula() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), None);
    let rpc = node.rpc();
    let alice = address("//Alice");
    complete(&node);

    // The three receipts are drawn, re-run by the node's checker and pass.
    let mut next = 1;
    let mut requested = Vec::new();
    let mut passed = Vec::new();
    let mut accepted_layer_tokens = 0u128;
    wait_for("three passed spot checks", CHECK_TIMEOUT, || {
        for e in rpc.new_events(&mut next)? {
            match e["event"].as_str() {
                Some("ReceiptAccepted") => {
                    let layers = e["layers"].as_str().unwrap();
                    let (a, b) = layers.split_once('-').unwrap();
                    let n: u128 = b.parse::<u128>().unwrap() - a.parse::<u128>().unwrap();
                    accepted_layer_tokens += n * e["tokens"].as_u64().unwrap() as u128;
                }
                Some("SpotCheckRequested") => requested.push(e["id"].clone()),
                Some("SpotCheckPassed") => passed.push(e["id"].clone()),
                Some("SpotCheckFailed") | Some("SpotCheckReassigned") => {
                    panic!("honest receipt not passed: {e}\n{}", node.log_text())
                }
                _ => {}
            }
        }
        Ok((passed.len() == 3).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    requested.sort_by_key(|v| v.to_string());
    passed.sort_by_key(|v| v.to_string());
    assert_eq!(requested, passed);
    assert!(accepted_layer_tokens > 0);

    // The credited tokens are paid at the next epoch boundary, to the base unit.
    let mut paid_layer_tokens = 0u128;
    wait_for("the token reward", CHECK_TIMEOUT, || {
        for e in rpc.new_events(&mut next)? {
            if e["event"] == "RewardPaid" && e["account"] == alice {
                let layer_tokens = e["layerTokens"].as_u64().unwrap() as u128;
                let credit = e["uptimeCredit"].as_u64().unwrap() as u128;
                assert_eq!(
                    amount(&e["reward"]),
                    layer_tokens * (UNIT / 10) / 30 + credit * UNIT / 1_000_000,
                    "{e}"
                );
                paid_layer_tokens += layer_tokens;
            }
        }
        Ok((paid_layer_tokens >= accepted_layer_tokens).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    assert_eq!(paid_layer_tokens, accepted_layer_tokens);
    let account = rpc.call("neuroshard_account", json!([alice])).unwrap();
    assert_eq!(account["slashed"], "0");
    assert_eq!(amount(&account["workerBond"]), 10_000 * UNIT);
    assert_eq!(account["heldEarnings"], "0", "everything settled");
}

#[test]
fn a_worker_that_skips_its_layers_is_caught_and_slashed() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), Some("1000000"));
    let rpc = node.rpc();
    let alice = address("//Alice");
    let before = rpc.call("neuroshard_account", json!([alice])).unwrap();
    assert_eq!(amount(&before["workerBond"]), 10_000 * UNIT);
    complete(&node);

    let mut next = 1;
    let mut failed = Vec::new();
    let mut reassigned = 0;
    wait_for("three failed spot checks", CHECK_TIMEOUT, || {
        for e in rpc.new_events(&mut next)? {
            match e["event"].as_str() {
                Some("SpotCheckFailed") => failed.push(e),
                Some("SpotCheckReassigned") => {
                    assert_eq!(e["verdict"], "mismatch", "{e}");
                    reassigned += 1;
                }
                Some("SpotCheckPassed") => {
                    panic!("faked work not caught: {e}\n{}", node.log_text())
                }
                Some("RewardPaid") if e["account"] == alice => {
                    assert_eq!(e["tokens"], 0, "tokens paid for faked work: {e}")
                }
                _ => {}
            }
        }
        Ok((failed.len() == 3).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    assert!(
        failed.iter().all(|e| e["verdict"] == "mismatch"),
        "{failed:?}"
    );
    assert_eq!(
        reassigned, 3,
        "each failure was confirmed by a second verdict"
    );
    // Each failure slashed `spot_check_slash` (50 NSHD: the receipts are small, so the
    // fee-scaled slash is below it). The first took the bond under the minimum and
    // deregistered the worker; the retired bond answered for the other two.
    let slashed: u128 = failed.iter().map(|e| amount(&e["slashed"])).sum();
    assert_eq!(slashed, 3 * 50 * UNIT);
    // The first failure forfeited every fee the worker held back to the client.
    let refunded: Vec<u128> = failed.iter().map(|e| amount(&e["refunded"])).collect();
    assert!(refunded[0] > 0 && refunded[1..] == [0, 0], "{refunded:?}");
    let after = rpc.call("neuroshard_account", json!([alice])).unwrap();
    assert_eq!(amount(&after["slashed"]), 3 * 50 * UNIT);
    assert_eq!(after["workerBond"], "0");
    assert_eq!(
        after["retiredBond"], "0",
        "released once its checks were decided"
    );
    assert_eq!(after["heldEarnings"], "0");

    // Two more epochs: no token reward for the voided work (uptime stops too: the worker
    // is no longer registered).
    let until = rpc.best_number().unwrap() + 2 * EPOCH;
    wait_for("two epochs", CHECK_TIMEOUT, || {
        for e in rpc.new_events(&mut next)? {
            if e["event"] == "RewardPaid" && e["account"] == alice {
                assert_eq!(e["tokens"], 0, "tokens paid for faked work: {e}");
            }
        }
        Ok((next > until).then_some(()))
    })
    .unwrap();
}
