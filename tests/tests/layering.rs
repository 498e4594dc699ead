//! The workspace's layering, checked from `cargo metadata` so the structure cannot decay
//! unnoticed: each crate may depend (as a normal, non-dev dependency) only on the
//! workspace crates below it, the runtime on nothing that does I/O, inference on nothing
//! of the chain, and no production crate on benchmark-only code or test fixtures (the
//! pallets' `test-fixtures` feature is for dev-dependencies only).
//!
//! The layers, bottom up (README "Layout"):
//! primitives <- support <- pallets <- runtime <- chain-spec;
//! kernels <- inference, primitives <- inference <- training; primitives <- network;
//! client (chain) <- serving <- trainer <- verifier; rpc over client, serving, trainer;
//! the binary (`neuroshard-node`) wires them all; `neuroshard-bench` sits beside it.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const PALLETS: [&str; 4] = [
    "neuroshard-balances",
    "neuroshard-ponw",
    "neuroshard-staking",
    "neuroshard-training-pallet",
];

/// Workspace crates each crate may depend on (normal dependencies).
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    let chain_core: Vec<&str> = [
        "neuroshard-primitives",
        "neuroshard-support",
        "neuroshard-runtime",
        "neuroshard-chain-spec",
    ]
    .into_iter()
    .chain(PALLETS)
    .collect();
    let with = |base: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(more).copied().collect()
    };
    let client = with(&chain_core, &["neuroshard-network"]);
    let serving = with(&client, &["neuroshard-client", "neuroshard-inference"]);
    let trainer = with(&serving, &["neuroshard-serving", "neuroshard-training"]);
    let verifier = with(&trainer, &["neuroshard-trainer"]);
    let rpc = trainer
        .clone()
        .into_iter()
        .chain(["neuroshard-trainer"])
        .collect();
    let mut rules = BTreeMap::from([
        ("neuroshard-primitives", vec![]),
        ("neuroshard-support", vec!["neuroshard-primitives"]),
        (
            "neuroshard-runtime",
            with(&["neuroshard-primitives", "neuroshard-support"], &PALLETS),
        ),
        (
            "neuroshard-chain-spec",
            with(
                &[
                    "neuroshard-primitives",
                    "neuroshard-support",
                    "neuroshard-runtime",
                ],
                &PALLETS,
            ),
        ),
        ("neuroshard-kernels", vec![]),
        (
            "neuroshard-inference",
            vec!["neuroshard-primitives", "neuroshard-kernels"],
        ),
        (
            "neuroshard-training",
            vec!["neuroshard-primitives", "neuroshard-inference"],
        ),
        ("neuroshard-network", vec!["neuroshard-primitives"]),
        ("neuroshard-client", client),
        ("neuroshard-serving", serving),
        ("neuroshard-trainer", trainer),
        ("neuroshard-verifier", verifier.clone()),
        ("neuroshard-rpc", rpc),
    ]);
    for pallet in PALLETS {
        rules.insert(
            pallet,
            with(&["neuroshard-primitives", "neuroshard-support"], &PALLETS)
                .into_iter()
                .filter(|p| *p != pallet)
                .collect(),
        );
    }
    rules
}

/// External crates that mean I/O, threads or clocks: the runtime must be pure.
const IO_CRATES: [&str; 8] = [
    "tokio",
    "redb",
    "libp2p",
    "jsonrpsee",
    "axum",
    "rayon",
    "tempfile",
    "reqwest",
];

/// Dependencies only benchmarks need (the oracles and the bench crate itself).
const BENCH_ONLY: [&str; 2] = ["candle-transformers", "neuroshard-bench"];

struct Package {
    name: String,
    /// (dependency name, optional) of normal dependencies.
    deps: Vec<(String, bool)>,
    /// Normal dependencies whose `test-fixtures` feature this crate enables.
    fixtures: Vec<String>,
}

fn workspace() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let normal = || {
                p["dependencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|d| d["kind"].is_null())
            };
            let name = |d: &Value| d["name"].as_str().unwrap_or_default().to_string();
            Package {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                deps: normal()
                    .map(|d| (name(d), d["optional"].as_bool().unwrap_or(false)))
                    .collect(),
                fixtures: normal()
                    .filter(|d| {
                        d["features"]
                            .as_array()
                            .is_some_and(|f| f.iter().any(|f| f == "test-fixtures"))
                    })
                    .map(name)
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let rules = allowed();
    let packages = workspace();
    let names: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    for expected in rules.keys() {
        assert!(
            names.contains(expected),
            "{expected} is not in the workspace"
        );
    }
    let mut violations = Vec::new();
    for p in &packages {
        let Some(allowed) = rules.get(p.name.as_str()) else {
            continue; // the binary, the bench crate and the tests may use everything
        };
        for (dep, _) in &p.deps {
            if names.contains(dep.as_str()) && !allowed.contains(&dep.as_str()) {
                violations.push(format!("{} depends on {dep}", p.name));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_runtime_does_no_io_and_inference_knows_no_chain() {
    let packages = workspace();
    let pure = ["neuroshard-runtime", "neuroshard-support"]
        .into_iter()
        .chain(PALLETS);
    for name in pure {
        let p = packages.iter().find(|p| p.name == name).expect(name);
        for (dep, _) in &p.deps {
            assert!(
                !IO_CRATES.contains(&dep.as_str()),
                "{name} must stay pure but depends on {dep}"
            );
        }
    }
    let inference = packages
        .iter()
        .find(|p| p.name == "neuroshard-inference")
        .expect("inference");
    assert!(
        !inference
            .deps
            .iter()
            .any(|(d, _)| d.contains("runtime") || d.contains("chain") || d.contains("pallet")),
        "inference must know nothing of the chain"
    );
}

#[test]
fn production_crates_carry_no_benchmark_dependencies() {
    for p in workspace() {
        if p.name == "neuroshard-bench" || p.name == "neuroshard-tests" {
            continue;
        }
        for (dep, optional) in &p.deps {
            // The binary reaches the bench crate only through its `bench` feature.
            let behind_feature = p.name == "neuroshard-node" && *optional;
            assert!(
                !BENCH_ONLY.contains(&dep.as_str()) || behind_feature,
                "{} depends on the benchmark-only crate {dep}",
                p.name
            );
        }
        // Test fixtures are enabled by dev-dependencies only.
        assert!(
            p.fixtures.is_empty(),
            "{} enables the test fixtures of {:?} in a normal dependency",
            p.name,
            p.fixtures
        );
    }
}
