//! Attacks on Proof of Training (issue 22), in the same processes-and-real-model setting
//! as the other attacks: gradient receipts with made-up hashes, a withheld adapter
//! snapshot, and a colluding majority of a round's holders pushing a poisoned adapter.

use super::{finality_advances, worker, CHECK_TIMEOUT, MODEL_TIMEOUT, PROBE_TIMEOUT};
use neuroshard_primitives::{blake2_256, Hash, LayerRange};
use neuroshard_tests::chain::address;
use neuroshard_tests::process::joint_log;
use neuroshard_tests::spec::{set_model_shards, write_spec_with};
use neuroshard_tests::training;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A dev chain spec (1 s slots) under `dir` whose canonical ranges are 0-10, 10-20,
/// 20-28 and 28-30, with 1 NSHD per training round, a collection window of
/// `collect_blocks`, and no spot checks.
fn training_spec(dir: &Path, collect_blocks: u32) -> PathBuf {
    let spec = write_spec_with(dir, "dev", 1000, 10, |params| {
        params["training"]["collect_blocks"] = collect_blocks.into();
        params["training"]["training_reward"] = REWARD.to_string().into();
        params["ponw"]["spot_check_permill"] = 0.into();
    })
    .unwrap();
    set_model_shards(&spec, &["0-10", "10-20", "20-28", "28-30"]).unwrap();
    spec
}

const REWARD: u128 = 1_000_000_000_000;

/// Fake training (issue 22). Eve and Ferdie serve 20-28, one of the chain's canonical
/// ranges, and train nothing. They sign gradient receipts for its round 0 with made-up
/// pseudo-gradient hashes (no payload exists), then, once the collection window is over,
/// both report that both were accepted and that the new adapter is a version whose
/// snapshot nobody has (withheld). On their word alone the round would close, mint its
/// reward to them, and make that version the one every 20-28 server must run: Dave, who
/// serves 20-28 honestly, would fail every liveness probe (the prober re-runs with the
/// chain's version and cannot get it) and lose his uptime. With the defence a validator
/// verifies the round's contributions before anything is paid or adopted: neither
/// payload is available, nothing is minted, the version is not adopted; Dave passes
/// probes, he is paid uptime, and finality advances.
#[test]
fn made_up_gradients_and_a_withheld_adapter_earn_nothing() {
    const FAKERS: [&str; 2] = ["//Eve", "//Ferdie"];
    let dir = tempfile::tempdir().unwrap();
    let spec = training_spec(dir.path(), 5);
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-20").unwrap();
    let d = worker(&spec, dir.path(), ("d", "//Dave"), &boot, "20-28", &[]);
    let e = worker(&spec, dir.path(), ("e", FAKERS[0]), &boot, "20-28", &[]);
    let f = worker(&spec, dir.path(), ("f", FAKERS[1]), &boot, "20-28", &[]);
    let nodes = [&a, &d, &e, &f];
    for node in nodes {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let rpc = a.rpc();
    let layers = LayerRange::new(20, 28).unwrap();
    for uri in FAKERS {
        training::submit_made_up_receipt(&rpc, uri, layers, 0, Hash::zero())
            .unwrap_or_else(|e| panic!("{e:#}\n{}", joint_log(&nodes)));
    }
    wait_for("the collection window to end", CHECK_TIMEOUT, || {
        let until = training::training(&rpc, "20-28")?["collectingUntil"].as_u64();
        Ok(until.filter(|u| rpc.best_number().is_ok_and(|b| b > *u)))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    let withheld = blake2_256(b"an adapter version nobody serves");
    let closed_in = training::report_together(&rpc, &FAKERS, layers, 0, withheld).unwrap();

    // What the chain does with it: rewards to the fakers, verification outcomes, and
    // Dave's probes after the round closed.
    let dave = address("//Dave");
    let mut seen = training::TrainingEvents::default();
    // The attack's effect would be that Dave fails every probe from now on. One probe
    // can also fail on a loaded host (the prober is verifying the round's contributions
    // at the same moment), so wait for a passed one, or four failed ones.
    wait_for(
        "the round's outcome and a passed probe of Dave (or four probes)",
        PROBE_TIMEOUT,
        || {
            seen.poll(&rpc)?;
            let decided = !seen.paid.is_empty() || seen.verdicts.len() == FAKERS.len();
            let probes = seen.probes_after(&dave, closed_in);
            let settled = probes.iter().any(|p| *p) || probes.len() >= 4;
            Ok((decided && settled).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    let minted: u128 = FAKERS.iter().map(|u| seen.paid_to(&address(u))).sum();
    let outcomes: Vec<&str> = seen.verdicts.iter().map(|(_, o)| o.as_str()).collect();
    let probes = seen.probes_after(&dave, closed_in);
    let served = training::training(&d.rpc(), "20-28").unwrap()["served"].clone();
    println!("minted to the fakers: {minted}; outcomes: {outcomes:?}; Dave's probes after the round closed: {probes:?}; Dave serves adapter {served}");
    assert_eq!(minted, 0, "the fakers were paid\n{}", joint_log(&nodes));
    assert_eq!(outcomes, ["Unavailable", "Unavailable"]);
    assert!(
        probes.iter().any(|p| *p),
        "Dave failed every probe: {probes:?}"
    );
    assert_eq!(served, Value::Null, "Dave adopted the withheld version");
    let mut next = seen.next;
    wait_for("Dave paid uptime", PROBE_TIMEOUT, || {
        let paid = rpc.new_events(&mut next)?.into_iter().any(|ev| {
            ev["event"] == "RewardPaid"
                && ev["account"] == dave.as_str()
                && ev["uptimeMinutes"].as_u64() > Some(0)
        });
        Ok(paid.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    finality_advances(&rpc, &nodes);
}

/// A colluding majority pushing a poisoned adapter. Bob, Charlie and Dave hold 28-30 and
/// train its adapter for one round; Charlie and Dave collude (`--fault-poison-adapter
/// 20`): after the outer step both scale the adapter by 20, report that version (two of
/// the round's three contributors: a majority) and serve its snapshot. The round closes
/// on their word and records their version, the one every 28-30 server ran before this
/// defence. Now the validator verifies the round first: the snapshot is available and
/// hashes to the recorded version, but its held-out loss is far above the base model's,
/// so it is not adopted and every 28-30 server stays on the base model; the
/// pseudo-gradients were honest work, and those the aggregate kept are paid.
#[test]
fn a_colluding_majority_cannot_make_servers_adopt_a_poisoned_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let spec = training_spec(dir.path(), 10);
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-28").unwrap();
    let holder = |name: &str, key: &str, extra: &[&str]| {
        let mut args = vec!["--train", "28-30", "--train-rounds", "1"];
        args.extend_from_slice(extra);
        worker(&spec, dir.path(), (name, key), &boot, "28-30", &args)
    };
    let poison = ["--fault-poison-adapter", "20"];
    let b = holder("b", "//Bob", &[]);
    let c = holder("c", "//Charlie", &poison);
    let d = holder("d", "//Dave", &poison);
    let nodes = [&a, &b, &c, &d];
    for node in nodes {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let rpc = a.rpc();
    let mut seen = training::TrainingEvents::default();
    wait_for("round 0 verified", TRAINING_TIMEOUT, || {
        seen.poll(&rpc)?;
        Ok((!seen.adapters.is_empty()).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    let record = training::training(&rpc, "28-30").unwrap();
    let verdict = &seen.adapters[0];
    println!(
        "recorded adapter {}; verdict {verdict}; contributions {:?}; paid {:?}",
        record["adapter"], seen.verdicts, seen.paid
    );
    assert_eq!(
        verdict["adapter"], record["adapter"],
        "not the colluders' version"
    );
    assert_eq!(verdict["outcome"], "Worse", "{}", joint_log(&nodes));
    assert!(verdict["heldOutAfter"].as_f64() > verdict["heldOutBefore"].as_f64());
    assert_eq!(record["adopted"], Value::Null);
    for node in [&b, &c, &d] {
        let served = training::training(&node.rpc(), "28-30").unwrap()["served"].clone();
        assert_eq!(served, Value::Null, "a server adopted the poisoned version");
    }
    // The pseudo-gradients were honest work: the round's budget went, once, to those
    // the aggregate kept.
    assert!(seen.verdicts.iter().all(|(_, o)| o == "Improved"));
    let minted: u128 = seen.paid.values().sum();
    assert!(minted <= REWARD && minted + 2 >= REWARD, "{:?}", seen.paid);
    finality_advances(&rpc, &nodes);
}

const TRAINING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
