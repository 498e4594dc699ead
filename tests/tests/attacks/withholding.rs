//! Omitting receipts from blocks (issue 20, hole 3): an author that leaves receipt
//! batches out of its blocks, hoping to keep receipts from being drawn for a check.

use super::{
    finality_advances, peer_id, post_completion, wait_provider, CHECK_TIMEOUT, MODEL_TIMEOUT,
};
use neuroshard_tests::chain::address;
use neuroshard_tests::process::joint_log;
use neuroshard_tests::spec::write_spec_with;
use neuroshard_tests::training::events_by_block;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use serde_json::json;
use std::collections::BTreeMap;

/// Most completions asked for while waiting for the omitting author to leave receipts out.
/// Each completion's receipt batch reaches the pools at its own moment, and the next
/// block's author is Charlie with probability about 1/4 (one of four validators), so
/// the chance that he never gets to omit one is about `0.75^60`, below `1e-7`; the loop
/// stops at the first omission (usually within a few completions).
const MAX_COMPLETIONS: usize = 60;
/// Blocks between a receipt's inclusion and its draw (`ponw::settlement::DRAW_DELAY`).
const DRAW_DELAY: u64 = 2;
/// What Charlie's node logs when it leaves receipt batches out of a block it authors.
const OMITTED: &str = "receipt batches left out of this block";

/// Per receipt of the worker's: the block that included it, the block that drew it, and
/// whether its check passed; its tokens paid.
#[derive(Debug, Default)]
struct Seen {
    included: BTreeMap<String, u64>,
    drawn: BTreeMap<String, u64>,
    passed: BTreeMap<String, bool>,
    tokens_paid: u64,
}

impl Seen {
    fn read(&mut self, rpc: &RpcClient, next: &mut u64, worker: &str) -> anyhow::Result<()> {
        for (number, e) in events_by_block(rpc, next)? {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if e["worker"] != worker && e["account"] != worker {
                continue;
            }
            match e["event"].as_str().unwrap_or_default() {
                "ReceiptAccepted" => drop(self.included.insert(id, number)),
                "SpotCheckRequested" => drop(self.drawn.insert(id, number)),
                "SpotCheckPassed" => drop(self.passed.insert(id, true)),
                "SpotCheckFailed" => drop(self.passed.insert(id, false)),
                "RewardPaid" => self.tokens_paid += e["tokens"].as_u64().unwrap_or(0),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Charlie, one of the local chain's four validators, authors about a quarter of the
/// blocks and leaves every receipt batch out of them (`--fault-omit-receipts`). Eve
/// serves layers 10-30 honestly for Alice's completions, and every included receipt is
/// drawn for a check. Completions go on until Charlie has left receipts out of a block
/// (see [`MAX_COMPLETIONS`] for why that happens in every run).
/// Each of Eve's receipts is still included (by another author), drawn exactly
/// [`DRAW_DELAY`] blocks after the block that included it (from randomness Charlie did
/// not know when he left it out), checked and paid; the chain keeps finalising.
#[test]
fn an_author_omitting_receipts_does_not_keep_them_from_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "local", 1000, 10, |params| {
        params["ponw"]["spot_check_permill"] = 1_000_000.into();
        params["ponw"]["spot_check_blocks"] = 20.into();
    })
    .unwrap();
    let validator = |name: &str, key: &str, boot: Option<&str>, extra: &[&str]| {
        let mut args = vec!["--key", key, "--validator", "--shards", "0-10"];
        args.extend(boot.iter().flat_map(|b| ["--bootnodes", *b]));
        args.extend_from_slice(extra);
        NodeProcess::run_named(&spec, dir.path(), name, &args).unwrap()
    };
    let a = validator("a", "//Alice", None, &[]);
    let boot = a.wait_p2p_addr().unwrap();
    let b = validator("b", "//Bob", Some(&boot), &[]);
    let c = validator("c", "//Charlie", Some(&boot), &["--fault-omit-receipts"]);
    let d = validator("d", "//Dave", Some(&boot), &[]);
    let e = NodeProcess::run_named(
        &spec,
        dir.path(),
        "e",
        &["--key", "//Eve", "--bootnodes", &boot, "--shards", "10-30"],
    )
    .unwrap();
    let nodes = [&a, &b, &c, &d, &e];
    for node in nodes {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let eve = address("//Eve");
    let rpc = a.rpc();
    wait_provider(&rpc, &peer_id(&e), &eve, &nodes);

    // Completions go on, without waiting for checks in between, until Charlie has left
    // a receipt batch out of a block he authored.
    let (mut seen, mut next) = (Seen::default(), 1);
    let mut completions = 0;
    while completions < MAX_COMPLETIONS && !c.log_text().contains(OMITTED) {
        let body = json!({"prompt": format!("{completions}. The capital of France is"), "max_tokens": 8, "temperature": 0});
        let r = post_completion(&a, &body).unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.body, joint_log(&nodes));
        completions += 1;
        // Let the batch reach the pools and a block before the next one is made, so each
        // completion is a separate chance for Charlie to author over pending receipts.
        let included = seen.included.len();
        wait_for(
            "Eve's receipts of this completion in a block",
            CHECK_TIMEOUT,
            || {
                seen.read(&rpc, &mut next, &eve)?;
                Ok((seen.included.len() > included).then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    }
    assert!(
        c.log_text().contains(OMITTED),
        "Charlie never left receipts out within {MAX_COMPLETIONS} completions"
    );
    wait_for(
        "every included receipt of Eve's checked",
        CHECK_TIMEOUT,
        || {
            seen.read(&rpc, &mut next, &eve)?;
            let all_decided = seen.included.keys().all(|id| seen.passed.contains_key(id));
            Ok(all_decided.then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    println!("{completions} completions; {seen:#?}");
    for (id, at) in &seen.included {
        assert_eq!(
            seen.drawn.get(id),
            Some(&(at + DRAW_DELAY)),
            "receipt {id} included at {at} was drawn {DRAW_DELAY} blocks later"
        );
        assert_eq!(
            seen.passed.get(id),
            Some(&true),
            "receipt {id} passed its check"
        );
    }
    wait_for("Eve's token reward", CHECK_TIMEOUT, || {
        seen.read(&rpc, &mut next, &eve)?;
        Ok((seen.tokens_paid > 0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    finality_advances(&rpc, &nodes);
}
