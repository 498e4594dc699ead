//! Transfers end to end: `neuroshard tx transfer` moves exactly the amount plus the
//! fee; replayed, forged and garbage extrinsics get JSON-RPC errors and change nothing.

use neuroshard_primitives::{AccountId, BalancesCall, Call, SignedExtrinsic, UNIT};
use neuroshard_runtime::balances;
use neuroshard_tests::chain::{self, address, to_hex, wait_included};
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{neuroshard_bin, wait_for, NodeProcess, RpcClient};
use parity_scale_codec::Encode;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn transfer_call(to: AccountId, amount: u128) -> Call {
    Call::Balances(BalancesCall::transfer_allow_death {
        dest: to,
        value: amount,
    })
}

/// The fee the chain charges for an extrinsic of `len` bytes.
fn fee(rpc: &RpcClient, len: usize) -> u128 {
    let params = rpc.call("neuroshard_params", json!([])).unwrap();
    let p: balances::Params = serde_json::from_value(params["balances"].clone()).unwrap();
    balances::fee(&p, len)
}

#[test]
fn cli_transfer_moves_exactly_the_amount_plus_the_fee() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 1000).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let (alice, bob) = (address("//Alice"), address("//Bob"));
    let alice_before = rpc.account(&alice).unwrap();
    let bob_before = rpc.account(&bob).unwrap();

    let out = Command::new(neuroshard_bin())
        .args([
            "tx", "transfer", "--from", "//Alice", "--to", &bob, "--amount", "1.5",
        ])
        .args(["--rpc", &node.http_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Included in block #"), "{stdout}");

    let alice_after = rpc.account(&alice).unwrap();
    let bob_after = rpc.account(&bob).unwrap();
    assert_eq!(bob_after.0 - bob_before.0, 1_500_000_000_000);
    // The CLI signed a transfer with nonce 0; its encoded length fixes the fee.
    let same_shape = SignedExtrinsic::sign(
        &neuroshard_primitives::crypto::keypair_from_uri("//Alice").unwrap(),
        &chain::genesis(&rpc).unwrap(),
        alice_before.3,
        transfer_call(chain::account("//Bob"), 1_500_000_000_000),
    );
    let expected_fee = fee(&rpc, same_shape.encoded_size());
    assert!(expected_fee > 0);
    assert_eq!(
        alice_before.0 - alice_after.0,
        1_500_000_000_000 + expected_fee
    );
    assert_eq!(alice_after.3, alice_before.3 + 1);

    // `neuroshard balance` shows the same in NSHD and base units.
    let out = Command::new(neuroshard_bin())
        .args(["balance", &bob, "--rpc", &node.http_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let expected = format!(
        "{} NSHD ({} base units)",
        neuroshard_primitives::format_balance(bob_after.0),
        bob_after.0
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(bob_after.0 % UNIT, 500_000_000_000);
}

#[test]
fn replayed_forged_and_garbage_extrinsics_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 1000).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let (alice, charlie) = (address("//Alice"), address("//Charlie"));

    let xt = chain::sign(
        &rpc,
        "//Alice",
        transfer_call(chain::account("//Charlie"), UNIT),
    )
    .unwrap();
    let xt_hex = to_hex(&xt);
    let from = rpc.best_number().unwrap();
    let hash = rpc.call("author_submitExtrinsic", json!([xt_hex])).unwrap();
    assert_eq!(hash, format!("0x{}", hex::encode(xt.hash().as_bytes())));
    // The same bytes again while pooled: already imported.
    let err = rpc
        .try_call("author_submitExtrinsic", json!([xt_hex]))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1013, "{err}");
    wait_included(&rpc, &xt_hex, from, TIMEOUT).unwrap();

    let alice_before = rpc.account(&alice).unwrap();
    let charlie_before = rpc.account(&charlie).unwrap();

    // Replay of the included extrinsic: stale nonce.
    let err = rpc
        .try_call("author_submitExtrinsic", json!([xt_hex]))
        .unwrap()
        .unwrap_err();
    // Substrate's code and text (InvalidTransaction::Stale), then ours.
    assert_eq!(err.code, 1010, "{err}");
    assert_eq!(err.message, "Invalid Transaction", "{err}");
    let data = err
        .data
        .as_ref()
        .and_then(|d| d.as_str())
        .unwrap_or_default();
    assert!(data.starts_with("Transaction is outdated ("), "{err}");
    assert!(data.contains("stale nonce"), "{err}");

    // Forged: a valid signature over a different amount.
    let mut forged = chain::sign(
        &rpc,
        "//Alice",
        transfer_call(chain::account("//Charlie"), UNIT),
    )
    .unwrap();
    forged.call = transfer_call(chain::account("//Charlie"), 1000 * UNIT);
    let err = rpc
        .try_call("author_submitExtrinsic", json!([to_hex(&forged)]))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1010, "{err}");
    let data = err
        .data
        .as_ref()
        .and_then(|d| d.as_str())
        .unwrap_or_default();
    assert!(data.starts_with("Transaction has a bad signature"), "{err}");

    // Signed by Bob but claiming to be Alice.
    let mut impostor = chain::sign(
        &rpc,
        "//Bob",
        transfer_call(chain::account("//Charlie"), UNIT),
    )
    .unwrap();
    impostor.signer = chain::account("//Alice");
    let err = rpc
        .try_call("author_submitExtrinsic", json!([to_hex(&impostor)]))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1010, "{err}");

    // Valid extrinsic bytes with trailing garbage.
    let mut bytes = xt.encode();
    bytes.push(0);
    let err = rpc
        .try_call(
            "author_submitExtrinsic",
            json!([format!("0x{}", hex::encode(bytes))]),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1001, "{err}");

    // Nothing pooled, and after more blocks nothing changed.
    assert_eq!(
        rpc.call("author_pendingExtrinsics", json!([])).unwrap(),
        json!([])
    );
    let number = rpc.best_number().unwrap();
    wait_for("two more blocks", TIMEOUT, || {
        Ok((rpc.best_number()? >= number + 2).then_some(()))
    })
    .unwrap();
    assert_eq!(rpc.account(&alice).unwrap(), alice_before);
    assert_eq!(rpc.account(&charlie).unwrap(), charlie_before);
}

/// Runs `neuroshard tx ...` against `node` and returns its stdout (fails on error).
fn tx(node: &NodeProcess, args: &[&str]) -> String {
    let out = Command::new(neuroshard_bin())
        .arg("tx")
        .args(args)
        .args(["--rpc", &node.http_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn cli_bond_and_unbond_move_stake() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 1000).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let bob = address("//Bob");
    let (free0, reserved0, bonded0, _) = rpc.account(&bob).unwrap();

    assert!(
        tx(&node, &["bond", "--from", "//Bob", "--amount", "100"]).contains("Included in block #")
    );
    let (free1, reserved1, bonded1, _) = rpc.account(&bob).unwrap();
    assert_eq!(bonded1 - bonded0, 100 * UNIT);
    assert_eq!(reserved1, reserved0);
    assert!(free0 - free1 > 100 * UNIT, "the fee is paid on top");

    tx(&node, &["unbond", "--from", "//Bob", "--amount", "40"]);
    let (_, reserved2, bonded2, _) = rpc.account(&bob).unwrap();
    assert_eq!(bonded2, bonded1 - 40 * UNIT);
    assert_eq!(
        reserved2,
        reserved1 + 40 * UNIT,
        "unbonding funds wait in reserved"
    );

    // More than is bonded: a clear error, nothing changes.
    let out = Command::new(neuroshard_bin())
        .args([
            "tx",
            "unbond",
            "--from",
            "//Bob",
            "--amount",
            "1000",
            "--rpc",
            &node.http_url(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("insufficient bonded balance"), "{stderr}");
    assert_eq!(rpc.account(&bob).unwrap().2, bonded2);

    // A worker (//Alice, the dev chain's) reserves more as its worker bond; someone who
    // is no worker is refused with the reason, before paying anything.
    let alice = address("//Alice");
    let alice_reserved = rpc.account(&alice).unwrap().1;
    tx(
        &node,
        &["worker-bond-more", "--from", "//Alice", "--amount", "25"],
    );
    assert_eq!(rpc.account(&alice).unwrap().1, alice_reserved + 25 * UNIT);
    let out = Command::new(neuroshard_bin())
        .args(["tx", "worker-bond-more", "--from", "//Bob", "--amount", "1"])
        .args(["--rpc", &node.http_url()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a registered worker"), "{stderr}");
    assert_eq!(
        rpc.account(&bob).unwrap().3,
        2,
        "Bob's refused call used no nonce"
    );

    // A light client's view: the bond, proven against the finalized state root.
    let out = Command::new(neuroshard_bin())
        .args(["verify-balance", &bob, "--rpc", &node.http_url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(proof verified)"), "{stdout}");
    assert!(
        stdout.contains(&format!("({bonded2} base units)")),
        "{stdout}"
    );
}
