//! Crash safety: SIGKILL the node at arbitrary points of its slot, several times, and
//! restart it on the same base path. Every block it had announced is still there with
//! the same hash and state root, the stored state verifies against the head, and block
//! production continues from there.

use neuroshard_tests::chain;
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn kill_9_during_block_production_then_restart_continues() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 300, 1000).unwrap();
    let mut node = NodeProcess::validator(&spec, dir.path(), "run-0.log").unwrap();
    let genesis = node.rpc().call("chain_getBlockHash", json!([0])).unwrap();

    for round in 1..=4 {
        let rpc = node.rpc();
        let target = rpc.best_number().unwrap() + 2;
        wait_for("blocks", TIMEOUT, || {
            Ok((rpc.best_number()? >= target).then_some(()))
        })
        .unwrap();
        // Land the kill at a varying offset inside a slot (0-299 ms).
        let jitter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 300_000_000;
        std::thread::sleep(Duration::from_nanos(u64::from(jitter)));
        let seen = rpc.call("chain_getHeader", json!([])).unwrap();
        let seen_hash = chain::header_hash(&seen).unwrap();
        node.kill9();

        node = NodeProcess::validator(&spec, dir.path(), &format!("run-{round}.log")).unwrap();
        let rpc = node.rpc();
        assert_eq!(rpc.call("chain_getBlockHash", json!([0])).unwrap(), genesis);
        // The block we saw survived, identical.
        let again = rpc.call("chain_getHeader", json!([seen_hash])).unwrap();
        assert_eq!(again, seen, "round {round}");
        assert_eq!(
            rpc.call("chain_getBlockHash", json!([seen["number"]]))
                .unwrap(),
            seen_hash
        );
        assert!(
            node.log_text().contains("state root verified"),
            "{}",
            node.log_text()
        );
        // The head on restart is the seen block or a later one, and production goes on.
        let seen_number = neuroshard_tests::rpc::hex_number(&seen["number"]).unwrap();
        assert!(rpc.best_number().unwrap() >= seen_number);
        wait_for("production to continue", TIMEOUT, || {
            Ok((rpc.best_number()? > seen_number + 1).then_some(()))
        })
        .unwrap();
        // Parent links hold across the restart boundary.
        let next = rpc
            .call("chain_getBlockHash", json!([seen_number + 1]))
            .unwrap();
        let next = rpc.call("chain_getHeader", json!([next])).unwrap();
        assert_eq!(next["parentHash"], seen_hash);
    }
}

/// The acceptance scenario literally: `neuroshard dev --base-path DIR`, kill -9 while it
/// produces blocks, `neuroshard dev --base-path DIR` again.
#[test]
fn dev_node_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::dev(dir.path()).unwrap();
    let rpc = node.rpc();
    wait_for("block #2", TIMEOUT, || {
        Ok((rpc.best_number()? >= 2).then_some(()))
    })
    .unwrap();
    let seen = rpc.call("chain_getHeader", json!([])).unwrap();
    let seen_hash = chain::header_hash(&seen).unwrap();
    node.kill9();

    let node = NodeProcess::dev(dir.path()).unwrap();
    let rpc = node.rpc();
    let again = rpc.call("chain_getHeader", json!([seen_hash])).unwrap();
    assert_eq!(again["stateRoot"], seen["stateRoot"]);
    assert_eq!(again, seen);
    let seen_number = neuroshard_tests::rpc::hex_number(&seen["number"]).unwrap();
    wait_for("production to continue", TIMEOUT, || {
        Ok((rpc.best_number()? > seen_number).then_some(()))
    })
    .unwrap();
}
