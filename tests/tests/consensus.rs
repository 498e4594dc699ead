//! Four validator processes of the `local` chain on loopback (one bootnode): blocks come
//! from different validators and are finalized by >= 2/3 of the bond voting; with two of
//! the four stopped, blocks keep coming but finality halts, and it resumes when they
//! return on their old databases. All nodes agree on every finalized block. A validator
//! that seals two blocks for one slot (fault injection) is reported by its peers and
//! slashed on chain.

use neuroshard_tests::chain;
use neuroshard_tests::spec::write_fast_spec;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const KEYS: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];

fn start(spec: &Path, dir: &Path, i: usize, bootnode: Option<&str>) -> NodeProcess {
    start_with(spec, dir, i, bootnode, &[])
}

fn start_with(
    spec: &Path,
    dir: &Path,
    i: usize,
    bootnode: Option<&str>,
    extra: &[&str],
) -> NodeProcess {
    let mut args = vec!["--key", KEYS[i], "--validator"];
    if let Some(b) = bootnode {
        args.extend(["--bootnodes", b]);
    }
    args.extend_from_slice(extra);
    // A new log per start: a restarted validator keeps its database, not its log.
    let log = dir.join(format!("v{i}-{}.log", rand_suffix()));
    NodeProcess::run_on_loopback(spec, &dir.join(format!("v{i}")), &log, &args).unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn node(i: usize, nodes: &[Option<NodeProcess>]) -> &NodeProcess {
    nodes[i].as_ref().expect("node is running")
}

fn finalized_number(node: &NodeProcess) -> u64 {
    node.rpc().finalized_head().unwrap().1
}

fn finalized_hash_at(node: &NodeProcess, number: u64) -> Value {
    node.rpc()
        .call("chain_getBlockHash", json!([number]))
        .unwrap()
}

#[test]
fn blocks_come_from_several_validators_finality_needs_two_thirds_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_spec(dir.path(), "local", 500, 1000).unwrap();
    let v0 = start(&spec, dir.path(), 0, None);
    let boot = v0.wait_p2p_addr().unwrap();
    let mut nodes: Vec<Option<NodeProcess>> = vec![Some(v0)];
    for i in 1..4 {
        nodes.push(Some(start(&spec, dir.path(), i, Some(&boot))));
    }

    // Finality advances with everyone up, and blocks come from several authors: leaders
    // are drawn by bond (four equal bonds), so 24 blocks by at most two of the four is
    // vanishingly unlikely once all four are up.
    wait_for(
        "finality with four validators",
        Duration::from_secs(60),
        || Ok((finalized_number(node(0, &nodes)) >= 24).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", node(0, &nodes).log_text()));
    let rpc = node(1, &nodes).rpc();
    let authors: BTreeSet<String> = (1..=24)
        .map(|n| {
            let hash = rpc.call("chain_getBlockHash", json!([n])).unwrap();
            let block = rpc.call("chain_getBlock", json!([hash])).unwrap();
            let header = chain::header_of(&block["block"]["header"]).unwrap();
            neuroshard_primitives::crypto::ss58(header.author())
        })
        .collect();
    assert!(authors.len() >= 3, "blocks 1-24 by {authors:?}");

    // Two of four stopped: blocks continue, finality halts.
    nodes[2].take().unwrap().kill9();
    nodes[3].take().unwrap().kill9();
    std::thread::sleep(Duration::from_secs(3));
    let halted_at = finalized_number(node(0, &nodes));
    let best_then = node(0, &nodes).rpc().best_number().unwrap();
    wait_for("blocks without finality", Duration::from_secs(30), || {
        Ok((node(0, &nodes).rpc().best_number()? >= best_then + 4).then_some(()))
    })
    .unwrap();
    assert_eq!(
        finalized_number(node(0, &nodes)),
        halted_at,
        "finalized with half the bond"
    );
    assert_eq!(finalized_number(node(1, &nodes)), halted_at);

    // They come back on their databases: finality resumes past the halt.
    nodes[2] = Some(start(&spec, dir.path(), 2, Some(&boot)));
    nodes[3] = Some(start(&spec, dir.path(), 3, Some(&boot)));
    for i in 0..4 {
        wait_for("finality to resume", Duration::from_secs(90), || {
            Ok((finalized_number(node(i, &nodes)) > halted_at + 2).then_some(()))
        })
        .unwrap_or_else(|e| panic!("node {i}: {e}\n{}", node(i, &nodes).log_text()));
    }
    // Finalized blocks carry the votes that finalized them.
    let finalized = node(0, &nodes)
        .rpc()
        .call("chain_getFinalizedHead", json!([]))
        .unwrap();
    let block = node(0, &nodes)
        .rpc()
        .call("chain_getBlock", json!([finalized]))
        .unwrap();
    // Substrate's shape: [[engine id, proof]], engine "NSFN".
    assert_eq!(block["justifications"][0][0], "0x4e53464e", "{block}");
    assert!(
        block["justifications"][0][1]
            .as_str()
            .is_some_and(|j| j.len() > 2),
        "{block}"
    );
    // Never two different finalized blocks at one height.
    let common = (0..4)
        .map(|i| finalized_number(node(i, &nodes)))
        .min()
        .unwrap();
    for n in [1, halted_at, common] {
        let h0 = finalized_hash_at(node(0, &nodes), n);
        for i in 1..4 {
            assert_eq!(
                finalized_hash_at(node(i, &nodes), n),
                h0,
                "node {i} block {n}"
            );
        }
    }
}

#[test]
fn a_validator_sealing_two_blocks_in_one_slot_is_slashed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_spec(dir.path(), "local", 500, 1000).unwrap();
    let v0 = start(&spec, dir.path(), 0, None);
    let boot = v0.wait_p2p_addr().unwrap();
    let _v1 = start(&spec, dir.path(), 1, Some(&boot));
    let _v2 = start(&spec, dir.path(), 2, Some(&boot));
    let dave = start_with(&spec, dir.path(), 3, Some(&boot), &["--fault-equivocate"]);
    let dave_address = neuroshard_tests::chain::address(KEYS[3]);
    let bonded = |n: &NodeProcess| -> u128 { n.rpc().account(&dave_address).unwrap().2 };
    let before = bonded(&v0);
    let slashed = wait_for("Dave's bond to be slashed", Duration::from_secs(90), || {
        let now = bonded(&v0);
        Ok((now < before).then_some(now))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", dave.log_text()));
    // 20% of the bond, once per offence (later offences slash 20% of what is left).
    assert!(slashed <= before - before / 5, "{before} -> {slashed}");
    // Explorers see it as a `Slashed` event.
    let rpc = v0.rpc();
    let best = rpc.best_number().unwrap();
    let slash_event = (1..=best).rev().find_map(|n| {
        let events = rpc.call("neuroshard_events", json!([n])).ok()?;
        events
            .as_array()?
            .iter()
            .find(|e| e["event"] == "Slashed")
            .cloned()
    });
    let slash_event = slash_event.expect("a Slashed event");
    assert_eq!(slash_event["who"], dave_address.as_str());
    assert_eq!(slash_event["reason"], "equivocation");
    assert_eq!(
        slash_event["amount"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap(),
        before / 5
    );
    assert!(v0.log_text().contains("equivocation") || _v1.log_text().contains("equivocation"));
}
