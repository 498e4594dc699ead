//! Fault injection on a four-validator network that serves the real model: while
//! generations run and blocks are produced, a seeded schedule hits one node at a time,
//! right after the generation's first streamed piece of text, with one of:
//! - kill: SIGKILL, then a restart on the same database;
//! - short pause: SIGSTOP, SIGCONT 3 s later (a generation waits it out);
//! - long pause: 20 s, longer than a shard call may take (the generation fails over);
//! - isolation: the node is partitioned from the other three for 15 s while it keeps
//!   running, authoring blocks on its own fork that it must give up when healed.
//!
//! After the rounds the network is split in two halves for 12 s: neither half holds the
//! 2/3 of the bond finality needs, so finality must stop on every node while both halves
//! go on authoring, then resume on one chain once healed. Checked throughout and at the
//! end:
//! - every generation completes with the single-process greedy text;
//! - no finalized block is ever reverted (one hash per finalized height, on every node,
//!   at every sample, across restarts and partitions);
//! - a node killed with -9 comes back with everything it had finalized (no data lost);
//! - all nodes converge on one finalized chain (compared height by height) and one state
//!   root;
//! - every receipt is spot-checked (`spot_check_permill` = 1e6), so checks meet killed,
//!   paused and isolated workers and checkers, yet no node loses any bond: an honest
//!   fault is never taken for fraud (worker and validator bonds, `slashed` all unchanged).
//!
//! Partitions are real cuts between live processes: each node is started with the hidden
//! `--fault-partition-file` and refuses every connection to the peers listed there.
//!
//! Short mode (the suite): each of the four faults once, in a seeded order, then the
//! split. Long mode: `NEUROSHARD_FAULT_ROUNDS=N` rounds (after the first four, faults
//! are drawn at random), seed `NEUROSHARD_FAULT_SEED` (default: the clock, printed).

use neuroshard_tests::chain::address;
use neuroshard_tests::generation::{complete_streamed, generate_text};
use neuroshard_tests::spec::write_spec_with;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const PROMPT: &str = "List the planets of the solar system, one per line.";
const TOKENS: usize = 48;
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// Node i: its key and the shards it serves. A serves the first shard and takes the
/// generations; every range has a second provider, so any one of B, C, D can fail.
const NODES: [(&str, &str); 4] = [
    ("//Alice", "0-10"),
    ("//Bob", "10-20"),
    ("//Charlie", "20-30"),
    ("//Dave", "0-10,10-20,20-30"),
];

struct Network {
    spec: PathBuf,
    dir: PathBuf,
    boot: String,
    nodes: Vec<Option<NodeProcess>>,
    restarts: usize,
    /// Every finalized (height -> hash) any node ever reported.
    finalized: BTreeMap<u64, String>,
    /// Each node's highest finalized height seen (it must never go back).
    high_water: [u64; 4],
    /// Each node's libp2p peer id (kept across restarts with its database).
    peer_ids: Vec<String>,
}

/// What a round does to its victim.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause(Duration),
    Isolate(Duration),
}

const FAULTS: [Fault; 4] = [
    Fault::Kill,
    Fault::Pause(Duration::from_secs(3)),
    Fault::Pause(Duration::from_secs(20)),
    Fault::Isolate(Duration::from_secs(15)),
];

impl Network {
    fn start_node(&mut self, i: usize) {
        let (key, shards) = NODES[i];
        let log = self.dir.join(format!("node{i}-{}.log", self.restarts));
        self.restarts += 1;
        let partition_file = self.partition_file(i);
        let partition_file = partition_file.to_str().expect("utf-8 temp path");
        let mut args = vec![
            "--key",
            key,
            "--validator",
            "--shards",
            shards,
            "--fault-partition-file",
            partition_file,
        ];
        if i > 0 {
            args.extend(["--bootnodes", &self.boot]);
        }
        let base = self.dir.join(format!("node{i}"));
        let node = NodeProcess::run_on_loopback(&self.spec, &base, &log, &args).unwrap();
        self.nodes[i] = Some(node);
    }

    fn partition_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("partition-{i}"))
    }

    /// Cuts the network into `sides`: every node refuses the nodes of the other sides.
    fn partition(&self, sides: &[&[usize]]) {
        for side in sides {
            let others: Vec<&str> = (0..4)
                .filter(|j| !side.contains(j))
                .map(|j| self.peer_ids[j].as_str())
                .collect();
            for &i in *side {
                std::fs::write(self.partition_file(i), others.join("\n")).unwrap();
            }
        }
    }

    /// Checks that no node in `sides` is connected to a node of another side.
    fn assert_cut(&self, sides: &[&[usize]]) {
        for side in sides {
            for &i in *side {
                let peers = self.node(i).rpc().call("system_peers", json!([])).unwrap();
                let across: Vec<usize> = (0..4)
                    .filter(|j| !side.contains(j))
                    .filter(|&j| {
                        peers
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["peerId"].as_str() == Some(self.peer_ids[j].as_str()))
                    })
                    .collect();
                assert!(across.is_empty(), "node {i} still connected to {across:?}");
            }
        }
    }

    fn heal(&self) {
        for i in 0..4 {
            let _ = std::fs::remove_file(self.partition_file(i));
        }
    }

    /// Every live node's finalized height and best height.
    fn heights(&self) -> Vec<(u64, u64)> {
        (0..4)
            .map(|i| {
                let rpc = self.node(i).rpc();
                (
                    rpc.finalized_head().map(|(_, n)| n).unwrap_or(0),
                    rpc.best_number().unwrap_or(0),
                )
            })
            .collect()
    }

    fn node(&self, i: usize) -> &NodeProcess {
        self.nodes[i].as_ref().expect("node is up")
    }

    /// Reads every live node's finalized head and checks it against all earlier reads.
    fn sample_finality(&mut self) {
        for i in 0..4 {
            let Some(node) = &self.nodes[i] else { continue };
            let Ok((hash, number)) = node.rpc().finalized_head() else {
                continue; // paused or just restarting
            };
            assert!(
                number >= self.high_water[i],
                "node {i} finalized {number} after {} (finality went back)",
                self.high_water[i]
            );
            self.high_water[i] = number;
            let known = self.finalized.entry(number).or_insert_with(|| hash.clone());
            assert_eq!(*known, hash, "two finalized blocks at height {number}");
        }
    }

    /// Waits until node `i` answers and has finalized at least `number`.
    fn wait_finalized(&mut self, i: usize, number: u64, timeout: Duration) {
        let node = self.node(i);
        wait_for("finality to reach the target", timeout, || {
            Ok((node.rpc().finalized_head()?.1 >= number).then_some(()))
        })
        .unwrap_or_else(|e| panic!("node {i}: {e}\n{}", node.log_text()));
        self.sample_finality();
    }
}

fn seed() -> u64 {
    std::env::var("NEUROSHARD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0)
        })
}

/// A small deterministic generator (xorshift) for the fault schedule.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn wait_loaded(node: &NodeProcess) {
    node.wait_serving(MODEL_TIMEOUT);
}

/// Each node account's (staking bond, worker bond, total slashed) as node `node` sees it.
fn bonds(node: &NodeProcess) -> Vec<(Value, Value, Value)> {
    NODES
        .iter()
        .map(|(key, _)| {
            let a = node
                .rpc()
                .call("neuroshard_account", json!([address(key)]))
                .unwrap();
            (
                a["bonded"].clone(),
                a["workerBond"].clone(),
                a["slashed"].clone(),
            )
        })
        .collect()
}

fn state_root_at(node: &NodeProcess, number: u64) -> Value {
    let hash = node
        .rpc()
        .call("chain_getBlockHash", json!([number]))
        .unwrap();
    node.rpc().call("chain_getHeader", json!([hash])).unwrap()["stateRoot"].clone()
}

#[test]
fn kills_and_pauses_during_generation_and_block_production() {
    let rounds: usize = std::env::var("NEUROSHARD_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FAULTS.len());
    let seed = seed();
    eprintln!("fault schedule: {rounds} rounds, NEUROSHARD_FAULT_SEED={seed}");
    let mut rng = seed | 1;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let spec = write_spec_with(&dir, "local", 500, 1000, |params| {
        params["ponw"]["spot_check_permill"] = 1_000_000.into();
    })
    .unwrap();
    let expected = generate_text(PROMPT, TOKENS, &[]).unwrap();

    let mut net = Network {
        spec,
        dir: dir.clone(),
        boot: String::new(),
        nodes: (0..4).map(|_| None).collect(),
        restarts: 0,
        finalized: BTreeMap::new(),
        high_water: [0; 4],
        peer_ids: Vec::new(),
    };
    net.start_node(0);
    net.boot = net.node(0).wait_p2p_addr().unwrap();
    for i in 1..4 {
        net.start_node(i);
    }
    for i in 0..4 {
        let addr = net.node(i).wait_p2p_addr().unwrap();
        let id = addr.rsplit("/p2p/").next().unwrap().to_string();
        net.peer_ids.push(id);
    }
    for i in 0..4 {
        wait_loaded(net.node(i));
    }
    // Every node registers as a worker by itself once its model is loaded.
    let bonds_before = wait_for("every node registered", Duration::from_secs(60), || {
        let b = bonds(net.node(0));
        Ok(b.iter().all(|(_, worker, _)| worker != "0").then_some(b))
    })
    .unwrap();
    // A routes through the DHT view: wait until it lists all six provider entries.
    wait_for(
        "every provider in A's view",
        Duration::from_secs(60),
        || {
            let v = net.node(0).rpc().call("neuroshard_shards", json!([]))?;
            let entries: usize = v["providers"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| p["shards"].as_array().map_or(0, |s| s.len()))
                        .sum()
                })
                .unwrap_or(0);
            Ok((entries == 6).then_some(()))
        },
    )
    .unwrap();
    net.wait_finalized(0, 3, Duration::from_secs(60));

    // Every fault once, in a seeded order; further rounds (long mode) draw at random.
    let mut schedule = FAULTS.to_vec();
    for i in (1..schedule.len()).rev() {
        schedule.swap(i, (next(&mut rng) % (i as u64 + 1)) as usize);
    }
    for round in 0..rounds {
        let victim = 1 + (next(&mut rng) % 3) as usize;
        let fault = schedule
            .get(round)
            .copied()
            .unwrap_or_else(|| FAULTS[(next(&mut rng) % FAULTS.len() as u64) as usize]);
        eprintln!("round {round}: {fault:?} node {victim} during a generation");
        let api = net.node(0).api_port();
        let (first_tx, first) = std::sync::mpsc::channel();
        let generation =
            std::thread::spawn(move || complete_streamed(api, PROMPT, TOKENS, first_tx));
        if first.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!("no text streamed: {:?}", generation.join());
        }
        let finalized_before = net.high_water[victim];
        let isolated_until = match fault {
            Fault::Kill => {
                net.nodes[victim].take().unwrap().kill9();
                None
            }
            Fault::Pause(pause) => {
                net.node(victim).pause_for(pause).unwrap();
                None
            }
            Fault::Isolate(cut) => {
                let rest: Vec<usize> = (0..4).filter(|&j| j != victim).collect();
                net.partition(&[&[victim], &rest]);
                Some(std::time::Instant::now() + cut)
            }
        };
        let text = generation.join().unwrap().unwrap();
        assert_eq!(text, expected, "round {round}: output changed by the fault");

        // Blocks go on without the victim (three of four validators still finalize).
        let target = net.high_water[0] + 2;
        net.wait_finalized(0, target, Duration::from_secs(60));
        if let Some(until) = isolated_until {
            // The isolated node went on alone: authoring in its slots, finalizing nothing.
            while std::time::Instant::now() < until {
                net.sample_finality();
                std::thread::sleep(Duration::from_millis(500));
            }
            let rest: Vec<usize> = (0..4).filter(|&j| j != victim).collect();
            net.assert_cut(&[&[victim], &rest]);
            net.heal();
        }
        if matches!(fault, Fault::Kill) {
            net.start_node(victim);
            // No data lost: what it had finalized is still there, with the same hashes.
            let node = net.node(victim);
            for (number, hash) in net.finalized.range(..=finalized_before) {
                let got = node
                    .rpc()
                    .call("chain_getBlockHash", json!([number]))
                    .unwrap();
                assert_eq!(
                    got.as_str(),
                    Some(hash.as_str()),
                    "node {victim} lost block {number}"
                );
            }
            wait_loaded(net.node(victim));
        }
        let target = net.high_water[0];
        net.wait_finalized(victim, target, Duration::from_secs(90));
    }

    // Split in halves: neither holds 2/3 of the bond, so finality stops everywhere while
    // both halves keep authoring; healed, they settle on one chain.
    eprintln!("split: nodes 0, 1 | 2, 3 for 12 s");
    net.partition(&[&[0, 1], &[2, 3]]);
    std::thread::sleep(Duration::from_secs(3)); // votes already in flight may land
    let frozen = net.heights();
    std::thread::sleep(Duration::from_secs(9));
    net.sample_finality();
    let split = net.heights();
    net.assert_cut(&[&[0, 1], &[2, 3]]);
    net.heal();
    eprintln!("split heights (finalized, best) at 3 s: {frozen:?}, at 12 s: {split:?}");
    for i in 0..4 {
        assert_eq!(
            split[i].0, frozen[i].0,
            "node {i} finalized a block while no side had 2/3 of the bond"
        );
    }
    for side in [[0, 1], [2, 3]] {
        assert!(
            side.iter().any(|&i| split[i].1 > frozen[i].1),
            "nodes {side:?} authored nothing while split: {frozen:?} -> {split:?}"
        );
    }

    // Convergence: every node finalizes past a common height, with one state root there.
    let target = net.high_water.iter().copied().max().unwrap_or(0) + 2;
    for i in 0..4 {
        net.wait_finalized(i, target, Duration::from_secs(90));
    }
    let roots: Vec<Value> = (0..4).map(|i| state_root_at(net.node(i), target)).collect();
    assert!(
        roots.iter().all(|r| *r == roots[0]),
        "state roots differ at {target}: {roots:?}"
    );
    net.sample_finality();
    // One finalized chain: every node has the same block at every height up to the
    // target, and it is the one any node ever reported finalized there.
    for number in 1..=target {
        let hashes: Vec<Value> = (0..4)
            .map(|i| {
                net.node(i)
                    .rpc()
                    .call("chain_getBlockHash", json!([number]))
                    .unwrap()
            })
            .collect();
        assert!(
            hashes.iter().all(|h| *h == hashes[0]),
            "nodes disagree at height {number}: {hashes:?}"
        );
        if let Some(seen) = net.finalized.get(&number) {
            assert_eq!(
                hashes[0].as_str(),
                Some(seen.as_str()),
                "height {number} was reverted"
            );
        }
    }
    // No honest node lost bond to the faults: not as a worker (a check that met a dead or
    // paused worker is `NoAnswer`, which costs income only), not as a validator.
    let bonds_after = bonds(net.node(0));
    assert_eq!(bonds_after, bonds_before, "an honest node lost bond");
    eprintln!(
        "faults survived; {target} heights compared on all nodes, {} finality samples, seed {seed}",
        net.finalized.len()
    );
    drop(tmp);
}
