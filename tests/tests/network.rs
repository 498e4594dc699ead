//! Separate node processes forming a network on loopback, each knowing only one bootnode:
//! the shard providers find each other through the DHT, a generation on one node runs
//! through shards in three processes and gives the same greedy text as single-process
//! inference, it survives the kill of the process serving its middle shard (a second
//! provider takes over, the session is replayed), and a node started hundreds of blocks
//! late syncs to the head and reaches the same state root.

use neuroshard_tests::generation;
use neuroshard_tests::spec::{write_fast_dev_spec, write_spec_with};
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
const PROMPT: &str = "The capital of France is";

fn start(spec: &Path, dir: &Path, name: &str, extra: &[&str]) -> NodeProcess {
    NodeProcess::run_named(spec, dir, name, extra).unwrap()
}

fn generate_text(max_tokens: usize, extra: &[&str]) -> String {
    generation::generate_text(PROMPT, max_tokens, extra).unwrap()
}

fn providers(node: &NodeProcess) -> Vec<(String, String)> {
    let Ok(v) = node.rpc().call("neuroshard_shards", json!([])) else {
        return vec![];
    };
    let mut out: Vec<(String, String)> = v["providers"]
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|p| {
                    let peer = p["peerId"].as_str().unwrap_or_default().to_string();
                    p["shards"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |s| (s.as_str().unwrap_or_default().to_string(), peer.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn shards_across_processes_discovery_generation_and_failover() {
    let dir = tempfile::tempdir().unwrap();
    // Every receipt is drawn for a spot check: Alice, the only validator, re-runs the
    // other nodes' receipts from material she fetches from them over the network.
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |params| {
        params["ponw"]["spot_check_permill"] = 1_000_000.into();
    })
    .unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-10").unwrap();
    let b = start(
        &spec,
        dir.path(),
        "b",
        &["--key", "//Bob", "--shards", "10-20", "--bootnodes", &boot],
    );
    let c = start(
        &spec,
        dir.path(),
        "c",
        &[
            "--key",
            "//Charlie",
            "--shards",
            "20-30",
            "--bootnodes",
            &boot,
        ],
    );
    let d = start(
        &spec,
        dir.path(),
        "d",
        &["--key", "//Dave", "--shards", "10-20", "--bootnodes", &boot],
    );
    let nodes = [&a, &b, &c, &d];

    // Every node sees all four providers through the DHT (after the model is loaded,
    // which is when a node starts announcing).
    for node in nodes {
        node.wait_serving(MODEL_TIMEOUT);
    }
    for node in nodes {
        let seen = wait_for(
            "every provider in the DHT view",
            Duration::from_secs(30),
            || {
                let p = providers(node);
                Ok((p.len() == 4).then_some(p))
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
        let ranges: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(ranges, ["0-10", "10-20", "10-20", "20-30"]);
    }

    // `generate --rpc` on A: a greedy generation crossing three processes matches
    // single-process inference.
    let expected = generate_text(24, &[]);
    let text = generate_text(24, &["--rpc", &a.http_url()]);
    assert_eq!(text, expected);
    assert!(
        b.log_text().contains("serving a new session")
            || d.log_text().contains("serving a new session"),
        "no 10-20 provider served the session"
    );
    assert!(c.log_text().contains("serving a new session"));

    // Its three receipts (Alice's 0-10, a remote 10-20 and Charlie's 20-30) are drawn,
    // re-run by Alice from the workers' material and pass.
    let (mut next, mut requested, mut passed) = (1, Vec::new(), Vec::new());
    wait_for(
        "the generation's spot checks",
        Duration::from_secs(120),
        || {
            for e in a.rpc().new_events(&mut next)? {
                match e["event"].as_str() {
                    Some("SpotCheckRequested") => requested.push(e["worker"].clone()),
                    Some("SpotCheckPassed") => passed.push(e["worker"].clone()),
                    Some("SpotCheckFailed") | Some("SpotCheckReassigned") => {
                        panic!("honest receipt not passed: {e}\n{}", a.log_text())
                    }
                    _ => {}
                }
            }
            Ok((requested.len() == 3 && passed.len() == 3).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e} ({requested:?}, {passed:?})\n{}", a.log_text()));
    let remote = passed
        .iter()
        .filter(|w| **w != neuroshard_tests::chain::address("//Alice"))
        .count();
    assert_eq!(remote, 2, "{passed:?}");

    // Kill whichever 10-20 provider serves the next generation, mid-generation: the
    // completion is streamed, and the kill follows its first streamed piece of text (the
    // rest, dozens of tokens through three processes, is still to be computed).
    let expected = generate_text(96, &[]);
    let before = |n: &NodeProcess| n.log_text().matches("serving a new session").count();
    let (b_before, d_before) = (before(&b), before(&d));
    let api = a.api_port();
    let (first_piece_tx, first_piece) = std::sync::mpsc::channel();
    let generation =
        std::thread::spawn(move || generation::complete_streamed(api, PROMPT, 96, first_piece_tx));
    first_piece
        .recv_timeout(Duration::from_secs(120))
        .expect("no text streamed from the generation");
    let survivor = if before(&b) > b_before {
        b.kill9();
        d
    } else {
        assert!(before(&d) > d_before, "no 10-20 provider took the session");
        d.kill9();
        b
    };
    let text = generation.join().unwrap().unwrap();
    assert_eq!(text, expected, "output changed by the failover");
    assert!(
        a.log_text().contains("failing over"),
        "the generation did not fail over (was it over before the kill?)"
    );
    assert!(survivor.log_text().matches("serving a new session").count() >= 1);
    drop(c);
}

#[test]
fn a_late_node_syncs_hundreds_of_blocks_and_reaches_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 100, 50).unwrap();
    let a = start(&spec, dir.path(), "a", &["--key", "//Alice", "--validator"]);
    let boot = a.wait_p2p_addr().unwrap();
    wait_for("200 blocks", Duration::from_secs(120), || {
        Ok((a.rpc().best_number()? >= 200).then_some(()))
    })
    .unwrap();
    let late = start(&spec, dir.path(), "late", &["--bootnodes", &boot]);
    let target = a.rpc().best_number().unwrap();
    wait_for(
        "the late node to reach the head",
        Duration::from_secs(120),
        || Ok((late.rpc().best_number()? >= target).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", late.log_text()));
    let header_at = |n: &NodeProcess| -> Value {
        let hash = n.rpc().call("chain_getBlockHash", json!([target])).unwrap();
        n.rpc().call("chain_getHeader", json!([hash])).unwrap()
    };
    let (ours, theirs) = (header_at(&late), header_at(&a));
    assert_eq!(ours, theirs);
    // The sync task logs after it hands the blocks to the client, so the line can trail
    // the head by a moment.
    wait_for("the sync log line", Duration::from_secs(10), || {
        Ok(late
            .log_text()
            .contains("synced blocks from peer")
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", late.log_text()));
    // It keeps following the head through gossip.
    let later = a.rpc().best_number().unwrap() + 5;
    wait_for(
        "the late node to follow new blocks",
        Duration::from_secs(60),
        || Ok((late.rpc().best_number()? >= later).then_some(())),
    )
    .unwrap();
}
