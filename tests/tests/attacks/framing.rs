//! Framing by validators (issue 20, hole 2): drawn checkers that answer an honest
//! worker's spot checks with a false `Mismatch`.

use super::{
    finality_advances, four_validators_and_eve, local_checked_spec, post_completion, CHECK_TIMEOUT,
};
use neuroshard_tests::chain::{address, amount};
use neuroshard_tests::process::joint_log;
use neuroshard_tests::{wait_for, RpcClient};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Most completions asked for while waiting for both false checkers to be drawn. Each
/// of Eve's checks draws its checker among Bob, Charlie and Dave (equal bonds), so a
/// framer is missed by one draw with probability 2/3: with 10 completions that was about
/// 2% per framer (a CI run saw Charlie never drawn); with 40 it is `2 x (2/3)^40`, about
/// `2e-7`. The loop stops as soon as both were drawn (usually within a few completions).
const MAX_COMPLETIONS: usize = 40;

/// What the chain said about the honest worker's checks and the false checkers.
#[derive(Debug, Default)]
struct Watch {
    /// Each check of the worker's receipts: the checkers drawn so far.
    checks: BTreeMap<String, Vec<String>>,
    /// Checks decided: id -> passed.
    decided: BTreeMap<String, bool>,
    /// Verdicts the chain took from each validator (by the next assignment's event).
    taken: Vec<(String, String)>,
    /// Calls that failed, by signer: their errors.
    failed_calls: Vec<(String, String)>,
    /// Slashes: (who, reason).
    slashes: Vec<(String, String)>,
    tokens_paid: u64,
}

impl Watch {
    fn read(&mut self, rpc: &RpcClient, next: &mut u64, worker: &str) -> anyhow::Result<()> {
        for e in rpc.new_events(next)? {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            match e["event"].as_str().unwrap_or_default() {
                "SpotCheckRequested" if e["worker"] == worker => {
                    self.checks.insert(id, vec![text("checker")]);
                }
                "SpotCheckReassigned" if self.checks.contains_key(&id) => {
                    let drawn = self.checks.get_mut(&id).expect("known check");
                    if let (Some(last), Some(v)) = (drawn.last(), e["verdict"].as_str()) {
                        self.taken.push((last.clone(), v.to_string()));
                    }
                    drawn.push(text("checker"));
                }
                "SpotCheckPassed" if e["worker"] == worker => {
                    self.decided.insert(id, true);
                }
                "SpotCheckFailed" if e["worker"] == worker => {
                    self.decided.insert(id, false);
                }
                "ExtrinsicFailed" => self
                    .failed_calls
                    .push((text("who"), e["error"].to_string())),
                "Slashed" => self.slashes.push((text("who"), text("reason"))),
                "RewardPaid" if e["account"] == worker => {
                    self.tokens_paid += e["tokens"].as_u64().unwrap_or(0)
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Validators drawn for any check of the worker's receipts.
    fn drawn(&self) -> BTreeSet<&String> {
        self.checks.values().flatten().collect()
    }

    fn all_decided(&self) -> bool {
        !self.checks.is_empty() && self.checks.keys().all(|id| self.decided.contains_key(id))
    }
}

/// Two of the local chain's four validators frame: whenever the chain draws them to
/// check a receipt, Charlie answers `Mismatch` with made-up evidence
/// (`--fault-false-mismatch forged`) and Dave with the real evidence, which shows the
/// work matches (`refuted`). Eve serves layers 10-30 honestly for Alice's completions;
/// her checks are drawn among Bob, Charlie and Dave (not the worker, not the client), so
/// two of her three possible checkers are framers. Completions go on until both framers
/// were drawn for her work. Eve must keep her bond and be paid; Charlie's verdicts are
/// refused; Dave, whose own evidence refutes his verdict, is slashed; the chain keeps
/// finalising.
#[test]
fn validators_cannot_frame_an_honest_worker_with_false_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let spec = local_checked_spec(dir.path(), 1_000_000);
    let forged: &[&str] = &["--fault-false-mismatch", "forged"];
    let refuted: &[&str] = &["--fault-false-mismatch", "refuted"];
    let [a, b, c, d, e] = four_validators_and_eve(&spec, dir.path(), [&[], &[], forged, refuted]);
    let nodes = [&a, &b, &c, &d, &e];
    let (eve, charlie, dave) = (address("//Eve"), address("//Charlie"), address("//Dave"));
    let rpc = a.rpc();
    let account = |who: &str| -> Value { rpc.call("neuroshard_account", json!([who])).unwrap() };
    let dave_bond_before = amount(&account(&dave)["bonded"]);

    let (mut next, mut watch) = (1, Watch::default());
    for i in 0..MAX_COMPLETIONS {
        let body = json!({"prompt": format!("{i}. The capital of France is"), "max_tokens": 16, "temperature": 0});
        let r = post_completion(&a, &body).unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.body, joint_log(&nodes));
        let checks = watch.checks.len();
        wait_for("Eve's new receipts checked", CHECK_TIMEOUT, || {
            watch.read(&rpc, &mut next, &eve)?;
            Ok((watch.checks.len() > checks && watch.all_decided()).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{watch:#?}\n{}", joint_log(&nodes)));
        let drawn = watch.drawn();
        let framed = watch.decided.values().any(|passed| !passed);
        if framed || (drawn.contains(&charlie) && drawn.contains(&dave)) {
            break;
        }
    }
    println!("{watch:#?}");
    let framed: Vec<_> = watch
        .decided
        .iter()
        .filter(|(_, passed)| !**passed)
        .collect();
    assert!(
        framed.is_empty(),
        "Eve was framed on {framed:?}: {watch:#?}\n{}",
        joint_log(&nodes)
    );
    let drawn = watch.drawn();
    assert!(
        drawn.contains(&charlie) && drawn.contains(&dave),
        "both framers drawn within {MAX_COMPLETIONS} completions: {watch:#?}"
    );
    let eve_account = account(&eve);
    assert_eq!(eve_account["slashed"], "0", "{eve_account}");
    assert_ne!(eve_account["workerBond"], "0", "Eve is still registered");

    // The chain took no `Mismatch` from either framer; Charlie's calls failed on their
    // evidence, Dave was slashed for a verdict his own evidence refutes.
    let mismatches: Vec<_> = watch
        .taken
        .iter()
        .filter(|(_, v)| v == "mismatch")
        .collect();
    assert!(
        mismatches.is_empty(),
        "false verdicts taken: {mismatches:?}"
    );
    assert!(
        watch
            .failed_calls
            .iter()
            .any(|(who, error)| *who == charlie && error.contains("statement")),
        "Charlie's forged evidence was refused: {watch:#?}\n{}",
        joint_log(&nodes)
    );
    assert!(
        watch
            .slashes
            .iter()
            .any(|(who, reason)| *who == dave && reason == "refuted_verdict"),
        "Dave was slashed: {watch:#?}\n{}",
        joint_log(&nodes)
    );
    assert!(amount(&account(&dave)["bonded"]) < dave_bond_before);

    // Eve is paid for her work.
    wait_for("Eve's token reward", CHECK_TIMEOUT, || {
        watch.read(&rpc, &mut next, &eve)?;
        Ok((watch.tokens_paid > 0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{watch:#?}\n{}", joint_log(&nodes)));
    finality_advances(&rpc, &nodes);
}
