//! Fault injection on a four-validator network that serves the real model: while
//! generations run and blocks are produced, a seeded schedule kills (SIGKILL, then a
//! restart on the same database) or pauses (SIGSTOP, then SIGCONT: for 3 s, which a
//! generation waits out, or for 20 s, longer than a shard call may take, so the
//! generation fails over) one node at a time, right after the generation's first
//! streamed piece of text. Checked throughout and at the end:
//! - every generation completes with the single-process greedy text;
//! - no finalized block is ever reverted (one hash per finalized height, on every node,
//!   at every sample, across restarts);
//! - a node killed with -9 comes back with everything it had finalized (no data lost);
//! - all nodes converge on one finalized chain (compared height by height) and one state
//!   root.
//!
//! Short mode (the suite): 3 faults. Long mode: `NEUROSHARD_FAULT_ROUNDS=N`, seed
//! `NEUROSHARD_FAULT_SEED` (default: the clock, printed).

use neuroshard_tests::generation::{complete_streamed, generate_text};
use neuroshard_tests::spec::write_fast_spec;
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
}

impl Network {
    fn start_node(&mut self, i: usize) {
        let (key, shards) = NODES[i];
        let log = self.dir.join(format!("node{i}-{}.log", self.restarts));
        self.restarts += 1;
        let mut args = vec!["--key", key, "--validator", "--shards", shards];
        if i > 0 {
            args.extend(["--bootnodes", &self.boot]);
        }
        let base = self.dir.join(format!("node{i}"));
        let node = NodeProcess::run_on_loopback(&self.spec, &base, &log, &args).unwrap();
        self.nodes[i] = Some(node);
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
        .unwrap_or(3);
    let seed = seed();
    eprintln!("fault schedule: {rounds} rounds, NEUROSHARD_FAULT_SEED={seed}");
    let mut rng = seed | 1;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let spec = write_fast_spec(&dir, "local", 500, 1000).unwrap();
    let expected = generate_text(PROMPT, TOKENS, &[]).unwrap();

    let mut net = Network {
        spec,
        dir: dir.clone(),
        boot: String::new(),
        nodes: (0..4).map(|_| None).collect(),
        restarts: 0,
        finalized: BTreeMap::new(),
        high_water: [0; 4],
    };
    net.start_node(0);
    net.boot = net.node(0).wait_p2p_addr().unwrap();
    for i in 1..4 {
        net.start_node(i);
    }
    for i in 0..4 {
        wait_loaded(net.node(i));
    }
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

    for round in 0..rounds {
        let victim = 1 + (next(&mut rng) % 3) as usize;
        let fault = next(&mut rng) % 3;
        let kill = fault == 0;
        let pause = Duration::from_secs(if fault == 1 { 3 } else { 20 });
        eprintln!(
            "round {round}: {} node {victim} during a generation",
            if kill {
                "kill -9".to_string()
            } else {
                format!("pause for {} s", pause.as_secs())
            }
        );
        let api = net.node(0).api_port();
        let (first_tx, first) = std::sync::mpsc::channel();
        let generation =
            std::thread::spawn(move || complete_streamed(api, PROMPT, TOKENS, first_tx));
        if first.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!("no text streamed: {:?}", generation.join());
        }
        let finalized_before = net.high_water[victim];
        if kill {
            net.nodes[victim].take().unwrap().kill9();
        } else {
            net.node(victim).pause_for(pause).unwrap();
        }
        let text = generation.join().unwrap().unwrap();
        assert_eq!(text, expected, "round {round}: output changed by the fault");

        // Blocks go on without the victim (three of four validators still finalize).
        let target = net.high_water[0] + 2;
        net.wait_finalized(0, target, Duration::from_secs(60));
        if kill {
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
    eprintln!(
        "faults survived; {target} heights compared on all nodes, {} finality samples, seed {seed}",
        net.finalized.len()
    );
    drop(tmp);
}
