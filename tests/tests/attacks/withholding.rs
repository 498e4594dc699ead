//! Omitting receipts from blocks (issue 20, hole 3): an author that leaves receipt
//! batches out of its blocks, hoping to keep receipts from being drawn for a check:
//! every batch, or (colluding with the batches' client) only those the randomness it
//! knows would sample. Receipts are drawn [`DRAW_DELAY`] blocks after their inclusion,
//! from randomness the including author did not know, so neither works.

use super::{
    finality_advances, four_validators_and_eve, local_checked_spec, post_completion, CHECK_TIMEOUT,
};
use neuroshard_tests::chain::address;
use neuroshard_tests::process::joint_log;
use neuroshard_tests::training::events_by_block;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

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
/// Receipts of Eve's included in the colluding test: with each drawn with probability
/// [`COLLUDING_PERMILL`] / 1e6 after inclusion, the chance that none is drawn is
/// `0.4^16`, about `4e-7`.
const COLLUDING_RECEIPTS: usize = 16;
const COLLUDING_PERMILL: u32 = 600_000;
/// Charlie's staking bond in the colluding test, in multiples of each other validator's:
/// 7 of 10 shares, so he authors about 70% of the slots and a batch of his waits little
/// for a block of his whose randomness would not sample it (with a quarter of the slots,
/// 16 completions took over 6 minutes).
const COLLUDER_BOND_SHARES: u128 = 7;
/// Epochs (of 10 blocks) a receipt stays acceptable in the colluding test. Charlie may
/// leave a batch out of many of his blocks in a row (each includes it with probability
/// `0.7 x 0.4^receipts`): with the local chain's 2 epochs a CI run saw one go stale and
/// never be included, which the attack does not need (a stale receipt earns nothing).
const COLLUDER_RECEIPT_EPOCHS: u64 = 100;

/// Per receipt of the worker's: the block that included it, the block that drew it, and
/// whether its check passed; its tokens paid.
#[derive(Debug, Default)]
struct Seen {
    included: BTreeMap<String, u64>,
    drawn: BTreeMap<String, u64>,
    passed: BTreeMap<String, bool>,
    tokens_paid: u64,
    /// The newest block read.
    latest: u64,
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
        self.latest = self.latest.max(next.saturating_sub(1));
        Ok(())
    }
}

/// Edits the spec at `spec` for the colluding test: Charlie's genesis staking bond times
/// [`COLLUDER_BOND_SHARES`], and receipts accepted for [`COLLUDER_RECEIPT_EPOCHS`]
/// epochs after their own.
fn favour_the_colluder(spec: &Path) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(spec).unwrap()).unwrap();
    let charlie = address("//Charlie");
    let validators = json["genesis"]["validators"].as_array_mut().unwrap();
    let entry = validators
        .iter_mut()
        .find(|v| v[0] == charlie.as_str())
        .expect("a genesis validator");
    let bond: u128 = entry[1].as_str().unwrap().parse().unwrap();
    entry[1] = (bond * COLLUDER_BOND_SHARES).to_string().into();
    json["genesis"]["params"]["ponw"]["receipt_epoch_window"] = COLLUDER_RECEIPT_EPOCHS.into();
    std::fs::write(spec, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    neuroshard_chain_spec::load(spec.to_str().unwrap()).unwrap();
}

/// Asks `client` for one 8-token completion (prompt number `i`) and waits until Eve's
/// receipts of it are in a block.
fn complete_and_wait_inclusion(
    client: &NodeProcess,
    i: usize,
    (rpc, next, seen): (&RpcClient, &mut u64, &mut Seen),
    nodes: &[&NodeProcess],
) {
    let body = json!({"prompt": format!("{i}. The capital of France is"), "max_tokens": 8, "temperature": 0});
    let r = post_completion(client, &body).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, joint_log(nodes));
    let included = seen.included.len();
    wait_for(
        "Eve's receipts of this completion in a block",
        CHECK_TIMEOUT,
        || {
            seen.read(rpc, next, &address("//Eve"))?;
            Ok((seen.included.len() > included).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(nodes)));
}

/// Waits until every included receipt of Eve's that was drawn is decided, then checks
/// that each was drawn exactly [`DRAW_DELAY`] blocks after its inclusion and passed, that
/// Eve is paid and that the chain keeps finalising. Returns how many were drawn.
fn drawn_after_inclusion_checked_and_paid(
    (rpc, next, seen): (&RpcClient, &mut u64, &mut Seen),
    nodes: &[&NodeProcess],
) -> usize {
    let eve = address("//Eve");
    // A receipt not drawn by DRAW_DELAY blocks after its inclusion never will be.
    let settled = |seen: &Seen| {
        let newest = seen.included.values().max().copied().unwrap_or(0);
        seen.latest >= newest + DRAW_DELAY
            && seen.drawn.keys().all(|id| seen.passed.contains_key(id))
    };
    wait_for(
        "every drawn receipt of Eve's decided",
        CHECK_TIMEOUT,
        || {
            seen.read(rpc, next, &eve)?;
            Ok(settled(seen).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{seen:#?}\n{}", joint_log(nodes)));
    for (id, at) in &seen.included {
        if let Some(drawn) = seen.drawn.get(id) {
            assert_eq!(
                *drawn,
                at + DRAW_DELAY,
                "receipt {id} included at {at} is drawn {DRAW_DELAY} blocks later: {seen:#?}"
            );
            assert_eq!(
                seen.passed.get(id),
                Some(&true),
                "receipt {id} passed its check"
            );
        }
    }
    wait_for("Eve's token reward", CHECK_TIMEOUT, || {
        seen.read(rpc, next, &eve)?;
        Ok((seen.tokens_paid > 0).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(nodes)));
    finality_advances(rpc, nodes);
    seen.drawn.len()
}

/// Charlie, one of the local chain's four validators, authors about a quarter of the
/// blocks and leaves every receipt batch out of them (`--fault-omit-receipts all`). Eve
/// serves layers 10-30 honestly for Alice's completions, and every included receipt is
/// drawn for a check. Completions go on until Charlie has left receipts out of a block
/// (see [`MAX_COMPLETIONS`] for why that happens in every run).
/// Each of Eve's receipts is still included (by another author), drawn exactly
/// [`DRAW_DELAY`] blocks after the block that included it (from randomness Charlie did
/// not know when he left it out), checked and paid; the chain keeps finalising.
#[test]
fn an_author_omitting_receipts_does_not_keep_them_from_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = local_checked_spec(dir.path(), 1_000_000);
    let omit: &[&str] = &["--fault-omit-receipts", "all"];
    let [a, b, c, d, e] = four_validators_and_eve(&spec, dir.path(), [&[], &[], omit, &[]]);
    let nodes = [&a, &b, &c, &d, &e];
    let rpc = a.rpc();

    // Completions go on, each waiting until its receipts are in a block (so each is a
    // separate chance for Charlie to author over pending receipts), until Charlie has
    // left a receipt batch out of a block he authored.
    let (mut seen, mut next) = (Seen::default(), 1);
    let mut completions = 0;
    while completions < MAX_COMPLETIONS && !c.log_text().contains(OMITTED) {
        complete_and_wait_inclusion(&a, completions, (&rpc, &mut next, &mut seen), &nodes);
        completions += 1;
    }
    assert!(
        c.log_text().contains(OMITTED),
        "Charlie never left receipts out within {MAX_COMPLETIONS} completions"
    );
    let drawn = drawn_after_inclusion_checked_and_paid((&rpc, &mut next, &mut seen), &nodes);
    println!("{completions} completions; {seen:#?}");
    assert_eq!(drawn, seen.included.len(), "every receipt drawn: {seen:#?}");
}

/// Charlie is both the client of the completions (they are asked of his node) and an
/// author, and colludes with himself: his node keeps its receipt batches from gossip, so
/// only he includes them, and his blocks include a batch only when the randomness he
/// knows as he builds (the parent's mixed with his own VRF output) would not sample any
/// of its receipts (`--fault-omit-receipts sampled`); he holds 70% of the staking bond,
/// so most slots are his. Were receipts drawn from the
/// randomness of the block that includes them, none of Eve's would ever be checked (a
/// cheating worker colluding with him would never be caught). Drawn [`DRAW_DELAY`]
/// blocks later, Eve's receipts are checked at the chain's rate whoever includes them:
/// of [`COLLUDING_RECEIPTS`], some are drawn, each exactly `DRAW_DELAY` blocks after
/// inclusion; all are paid and the chain keeps finalising.
#[test]
fn an_author_colluding_with_the_client_cannot_choose_which_receipts_are_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let spec = local_checked_spec(dir.path(), COLLUDING_PERMILL);
    favour_the_colluder(&spec);
    let collude: &[&str] = &["--fault-omit-receipts", "sampled"];
    let [a, b, c, d, e] = four_validators_and_eve(&spec, dir.path(), [&[], &[], collude, &[]]);
    let nodes = [&a, &b, &c, &d, &e];
    let rpc = a.rpc();

    let (mut seen, mut next) = (Seen::default(), 1);
    let mut completions = 0;
    while seen.included.len() < COLLUDING_RECEIPTS {
        complete_and_wait_inclusion(&c, completions, (&rpc, &mut next, &mut seen), &nodes);
        completions += 1;
    }
    assert!(
        c.log_text().contains("receipt batch kept from gossip"),
        "Charlie kept his batches to himself\n{}",
        joint_log(&nodes)
    );
    let drawn = drawn_after_inclusion_checked_and_paid((&rpc, &mut next, &mut seen), &nodes);
    println!(
        "{completions} completions; Charlie left batches out of {} of his blocks; {drawn} of {} \
         of Eve's receipts drawn; {seen:#?}",
        c.log_text().matches(OMITTED).count(),
        seen.included.len()
    );
    assert!(
        drawn > 0,
        "none of the {} receipts Charlie chose to include was drawn: {seen:#?}",
        seen.included.len()
    );
}
