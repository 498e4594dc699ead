//! Issue 25, first slice: the unmodified `@polkadot/api` (pinned by
//! `scripts/test-deps.sh` under `~/.cache/neuroshard/node-polkadot`) connects to a real
//! node with no custom types and reads what a wallet shows first. The node makes one
//! transfer //Alice -> //Bob and paid inference work (receipts, then their reward at the
//! next epoch); `tests/js/polkadot_api.mjs` then reads the chain's properties, the head
//! (hashing its header itself), both accounts and the events (`System.Events`) at the
//! head and at the blocks of the transfer, the receipts and the payout (`api.at`), every
//! pallet constant and the list of accounts, all decoded through the node's metadata.
//! Each figure is compared with the node's own RPC. Then a wallet sends:
//! `tests/js/polkadot_transfer.mjs` signs transfers with polkadot.js's own keyring
//! (sr25519 and ed25519, the first with polkadot.js's default mortal era) and submits
//! them (`transferKeepAlive`, `transferAllowDeath`), sends a mortal transfer after its
//! era ended, a transfer that fails in its block (reported as polkadot.js reports a
//! failed extrinsic: `dispatchError`), and one that reaps its sender.

use neuroshard_primitives::{blake2_256, BalancesCall, Call, Era, SignedExtrinsic, UNIT};
use neuroshard_tests::chain::{self, address};
use neuroshard_tests::rpc::RpcClient;
use neuroshard_tests::spec::{write_fast_dev_spec, write_unchecked_dev_spec};
use neuroshard_tests::{wait_for, NodeProcess};
use parity_scale_codec::Decode;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Blocks per epoch in the reading test: short, so the work's payout comes soon.
const EPOCH: u64 = 20;

/// Where `scripts/test-deps.sh` installs the pinned `@polkadot/api`.
fn polkadot_dir() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/neuroshard/node-polkadot")
}

/// Runs `tests/js/SCRIPT` with `args`; returns its JSON report (its last line).
fn run_wallet_script(script: &str, args: &[String]) -> Value {
    let dir = polkadot_dir();
    assert!(
        dir.join("node_modules/@polkadot/api").exists(),
        "@polkadot/api is not installed in {}: run scripts/test-deps.sh",
        dir.display()
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("js")
        .join(script);
    let out = Command::new("node")
        .arg(&path)
        .args(args)
        .env("POLKADOT_NODE_DIR", &dir)
        .output()
        .expect("node (JavaScript) is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn num(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn polkadot_js_reads_the_chain_with_no_custom_types() {
    let dir = tempfile::tempdir().unwrap();
    // Synthetic receipts (nobody can re-run them): no spot-check draws.
    let spec = write_unchecked_dev_spec(dir.path(), 500, EPOCH).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let (alice, bob) = (address("//Alice"), address("//Bob"));
    let amount = 3 * UNIT / 2;
    let call = Call::Balances(BalancesCall::transfer_allow_death {
        dest: chain::account("//Bob"),
        value: amount,
    });
    let (_, included) = chain::submit_and_wait(&rpc, "//Alice", call, TIMEOUT).unwrap();
    // Paid inference work: receipts in one block, their reward at the next epoch start.
    let work = chain::submit_dev_work(&rpc, EPOCH, TIMEOUT).unwrap();
    wait_for("the work's payout block", TIMEOUT, || {
        Ok((rpc.best_number()? >= work.payout).then_some(()))
    })
    .unwrap();
    let hash_of = |n: u64| rpc.call("chain_getBlockHash", json!([n])).unwrap();
    // Genesis last: api.at(genesis) must read the state before everything since.
    let blocks = [included - 1, included, work.included, work.payout, 0];
    let hashes = blocks.map(|n| hash_of(n).as_str().unwrap().to_string());

    let mut args = vec![node.ws_url(), format!("{alice},{bob}")];
    args.extend(hashes);
    let report = run_wallet_script("polkadot_api.mjs", &args);
    let log = node.log_text();
    let ctx = format!("report: {report}\nnode log tail:\n{}", tail(&log));

    // The chain as a wallet first sees it.
    assert_eq!(report["runtime"]["specName"], "neuroshard", "{ctx}");
    // polkadot.js read everything below through the V15 metadata.
    assert_eq!(report["metadataVersion"], 15, "{ctx}");
    assert_eq!(report["genesisHash"], hash_of(0), "{ctx}");
    let props = &report["properties"];
    assert_eq!(props["ss58Format"], 42, "{ctx}");
    assert_eq!(props["tokenDecimals"], json!([12]), "{ctx}");
    assert_eq!(props["tokenSymbol"], json!(["NSHD"]), "{ctx}");
    for pallet in ["System", "Balances", "Ponw", "Staking", "Training"] {
        assert!(
            report["pallets"]
                .as_array()
                .unwrap()
                .contains(&json!(pallet)),
            "{pallet} missing: {ctx}"
        );
    }

    // The head: System.Number in the head's state is the header's number.
    let head = &report["head"];
    assert_eq!(num(&head["number"]), num(&report["headerNumber"]), "{ctx}");

    // Both accounts at the head equal the node's own view of the same block.
    for uri in ["//Alice", "//Bob"] {
        let ours = chain::account_at(&rpc, uri, &head["hash"]).unwrap();
        let theirs = &head["accounts"][address(uri)];
        assert_eq!(num(&theirs["frozen"]), ours.bonded, "{uri}: {ctx}");
        assert_eq!(
            num(&theirs["free"]),
            ours.free + ours.bonded,
            "{uri}: Substrate's free includes the frozen bond: {ctx}"
        );
        assert_eq!(num(&theirs["reserved"]), ours.reserved, "{uri}: {ctx}");
        assert_eq!(
            num(&theirs["nonce"]),
            u128::from(ours.nonce),
            "{uri}: {ctx}"
        );
    }
    // Bob receives nothing after the transfer: neuroshard_account agrees now.
    let bob_now = rpc.call("neuroshard_account", json!([bob])).unwrap();
    assert_eq!(
        num(&head["accounts"][&bob]["free"]),
        chain::amount(&bob_now["free"]),
        "{ctx}"
    );
    assert!(num(&head["accounts"][&alice]["nonce"]) >= 1, "{ctx}");

    // The accounts map is listed (state_getKeysPaged) and its keys decode to accounts.
    let listed = report["listedAccounts"].as_array().unwrap();
    for who in [&alice, &bob] {
        assert!(listed.contains(&json!(who)), "{who} not listed: {ctx}");
    }

    // Historical reads through api.at: the transfer shows between the two blocks.
    let history = report["history"].as_array().unwrap();
    assert_eq!(
        num(&history[0]["number"]),
        u128::from(included - 1),
        "{ctx}"
    );
    assert_eq!(num(&history[1]["number"]), u128::from(included), "{ctx}");
    let bob_free = |i: usize| num(&history[i]["accounts"][&bob]["free"]);
    assert_eq!(bob_free(1) - bob_free(0), amount, "{ctx}");
    // At genesis Alice had her genesis balance and nonce 0: both have changed since
    // (the transfer, its fee, the work's escrow), and api.at(genesis) reads the old ones.
    assert_eq!(num(&history[4]["number"]), 0, "{ctx}");
    let genesis_alice = &history[4]["accounts"][&alice];
    let ours = chain::account_at(&rpc, "//Alice", &hash_of(0)).unwrap();
    assert_eq!(
        num(&genesis_alice["free"]),
        ours.free + ours.bonded,
        "{ctx}"
    );
    assert_eq!(num(&genesis_alice["nonce"]), 0, "{ctx}");
    assert_ne!(
        num(&genesis_alice["free"]),
        num(&head["accounts"][&alice]["free"]),
        "{ctx}"
    );
    // The head hash polkadot.js computed from the header is the node's.
    assert_eq!(report["head"]["hash"], report["headHashByNumber"], "{ctx}");

    check_events(history, &alice, &bob, amount, work.receipts.len(), &ctx);

    // Constants from metadata equal the chain's parameters.
    let params = rpc.call("neuroshard_params", json!([])).unwrap();
    let consts = &report["consts"];
    assert_eq!(
        num(&consts["balances"]["existentialDeposit"]),
        chain::amount(&params["balances"]["existential_deposit"]),
        "{ctx}"
    );
    assert_eq!(consts["system"]["ss58Prefix"], 42, "{ctx}");
    for pallet in ["system", "balances", "ponw", "staking", "training"] {
        assert!(
            consts[pallet].as_object().is_some_and(|c| !c.is_empty()),
            "no constants for {pallet}: {ctx}"
        );
    }
}

/// A wallet sends NSHD: polkadot.js builds and signs (sr25519, then ed25519 with a
/// tip) and submits two transfers; the node includes both, and the balances and the fee
/// events on its own RPC account for every base unit: the tip is charged with the fee,
/// and the fee polkadot.js quoted beforehand (`paymentInfo`) is the one charged.
#[test]
fn polkadot_js_signs_transfers_the_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 1000).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let rpc = node.rpc();
    let from = rpc.best_number().unwrap();
    let (amount, onward, tip) = (5 * UNIT, 2 * UNIT, UNIT / 1000);
    let args = [
        node.ws_url(),
        amount.to_string(),
        onward.to_string(),
        tip.to_string(),
    ];
    let report = run_wallet_script("polkadot_transfer.mjs", &args);
    let ctx = format!(
        "report: {report}\nnode log tail:\n{}",
        tail(&node.log_text())
    );

    let extensions = report["signedExtensions"].as_array().unwrap();
    for name in [
        "CheckSpecVersion",
        "CheckGenesis",
        "CheckMortality",
        "CheckNonce",
        "ChargeTransactionPayment",
    ] {
        assert!(extensions.contains(&json!(name)), "{name}: {ctx}");
    }
    let edward = report["edward"].as_str().unwrap().to_string();
    assert_eq!(num(&report["edwardBefore"]), 0, "{ctx}");
    assert_eq!(num(&report["edwardFunded"]), amount, "{ctx}");
    assert_eq!(
        num(&report["charlieAfter"]) - num(&report["charlieBefore"]),
        onward,
        "{ctx}"
    );
    // Edward paid the transfer plus one fee, which includes the tip.
    let mut next = from;
    let events = rpc.new_events(&mut next).unwrap();
    let fees: Vec<u128> = events
        .iter()
        .filter(|e| e["event"] == "FeeBurned" && e["who"] == edward.as_str())
        .map(|e| chain::amount(&e["amount"]))
        .collect();
    // (Then the two transfers of which one failed, each paying the quoted fee, and
    // the one that reaped him.)
    assert_eq!(fees.len(), 4, "{events:?}\n{ctx}");
    assert_eq!(fees[1..3], [num(&report["failingQuote"]); 2], "{ctx}");
    assert!(fees[0] > tip, "{fees:?}: {ctx}");
    // The fee the wallet was quoted (without the tip, as Substrate's partialFee) is the
    // fee charged, through the runtime API and the RPC alike.
    assert_eq!(num(&report["quoted"]) + tip, fees[0], "{ctx}");
    assert_eq!(num(&report["quotedRpc"]), num(&report["quoted"]), "{ctx}");
    assert_eq!(
        report["viaRuntimeApi"], true,
        "paymentInfo used state_call: {ctx}"
    );
    assert_eq!(
        num(&report["edwardAfter"]),
        amount - onward - fees[0],
        "{ctx}"
    );
    // The hashes polkadot.js computed for what it submitted are those of extrinsics in
    // the blocks (blake2-256 of the whole encoding, as Substrate hashes them).
    let mut in_blocks = Vec::new();
    for n in from..=rpc.best_number().unwrap() {
        let hash = rpc.call("chain_getBlockHash", json!([n])).unwrap();
        let block = rpc.call("chain_getBlock", json!([hash])).unwrap();
        for xt in block["block"]["extrinsics"].as_array().unwrap() {
            let bytes = hex::decode(xt.as_str().unwrap().trim_start_matches("0x")).unwrap();
            in_blocks.push(format!("{:?}", blake2_256(&bytes)));
        }
    }
    // The first was watched (author_submitAndWatchExtrinsic) into a final block.
    // (This chain finalizes each block at once, so polkadot.js may fold `InBlock` into
    // the `Finalized` that arrives with it.)
    let statuses = report["firstStatuses"].as_array().unwrap();
    assert_eq!(statuses.first(), Some(&json!("Ready")), "{ctx}");
    assert_eq!(statuses.last(), Some(&json!("Finalized")), "{ctx}");
    assert_eq!(
        report["rawStatuses"],
        json!(["Ready", "InBlock", "Finalized"]),
        "the node's own notifications: {ctx}"
    );
    let block = rpc
        .call("chain_getBlock", json!([report["firstFinalizedIn"]]))
        .unwrap();
    let held = block["block"]["extrinsics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|xt| {
            let bytes = hex::decode(xt.as_str().unwrap().trim_start_matches("0x")).unwrap();
            format!("{:?}", blake2_256(&bytes)) == report["first"].as_str().unwrap()
        });
    assert!(held, "the finalized block does not hold it: {block}\n{ctx}");
    check_mortality(&rpc, &report, &block, &ctx);
    check_failure(&report, &ctx);
    check_reaping(&report, &ctx);
    for key in ["first", "second"] {
        let hash = report[key].as_str().unwrap();
        assert!(
            in_blocks.iter().any(|h| h == hash),
            "{key} extrinsic {hash} not in blocks {from}..: {in_blocks:?}\n{ctx}"
        );
    }
}

/// The transfer that failed in its block: polkadot.js's `signAndSend` callback saw
/// `dispatchError`, a module error it named `balances.InsufficientBalance` from the
/// metadata, with `DispatchInfo.paysFee = Yes`; the sender paid both transfers' fees
/// (the quote) and only the first transfer's amount.
fn check_failure(report: &Value, ctx: &str) {
    let failed = &report["failed"];
    assert_eq!(failed["isModule"], true, "{ctx}");
    assert_eq!(
        failed["module"],
        json!({"section": "balances", "name": "InsufficientBalance"}),
        "{ctx}"
    );
    assert_eq!(failed["paysFee"], "Yes", "{ctx}");
    let fee = num(&report["failingQuote"]);
    assert!(fee > 0, "{ctx}");
    assert_eq!(
        num(&report["edwardAfter"]) - num(&report["edwardAfterFailure"]),
        num(&report["failAmount"]) + 2 * fee,
        "{ctx}"
    );
}

/// Keep-alive and reaping, with polkadot.js's `transferKeepAlive` /
/// `transferAllowDeath`: a transfer leaving Edward half the existential deposit is
/// refused as keep-alive (Balances.Expendability) and reaps him as allow-death: the
/// dust is burned (`Balances.DustLost`), his free balance is 0 and his nonce is kept.
fn check_reaping(report: &Value, ctx: &str) {
    let error = report["keepAliveError"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("1010: Invalid Transaction") && error.contains("keep-alive"),
        "{error:?}: {ctx}"
    );
    let dust = num(&report["existentialDeposit"]) / 2;
    assert!(dust > 0, "{ctx}");
    assert_eq!(
        report["reapEvents"],
        json!([{"account": report["edward"], "amount": dust.to_string()}]),
        "{ctx}"
    );
    assert_eq!(num(&report["reaped"]["data"]["free"]), 0, "{ctx}");
    assert!(
        num(&report["reaped"]["nonce"]) >= 4,
        "the nonce is kept: {ctx}"
    );
}

/// The events polkadot.js decoded from `System.Events` at the blocks before and of the
/// transfer, of the receipts and of their payout (`history[0..4]`).
fn check_events(
    history: &[Value],
    alice: &str,
    bob: &str,
    amount: u128,
    receipts: usize,
    ctx: &str,
) {
    // Events decoded by polkadot.js from System.Events through the metadata.
    let events = |i: usize, section: &str, method: &str| -> Vec<Value> {
        history[i]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["section"] == section && e["method"] == method)
            .cloned()
            .collect()
    };
    let transfers = events(1, "balances", "Transfer");
    assert_eq!(transfers.len(), 1, "{ctx}");
    assert_eq!(transfers[0]["data"]["from"], json!(alice), "{ctx}");
    assert_eq!(transfers[0]["data"]["to"], json!(bob), "{ctx}");
    assert_eq!(num(&transfers[0]["data"]["amount"]), amount, "{ctx}");
    assert!(
        transfers[0]["phase"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("applyextrinsic"),
        "{ctx}"
    );
    assert!(events(0, "balances", "Transfer").is_empty(), "{ctx}");
    // Its status, as explorers read it: System.ExtrinsicSuccess in the same phase.
    let success: Vec<Value> = events(1, "system", "ExtrinsicSuccess")
        .into_iter()
        .filter(|e| e["phase"] == transfers[0]["phase"])
        .collect();
    assert_eq!(success.len(), 1, "{ctx}");
    assert_eq!(success[0]["data"]["who"], json!(alice), "{ctx}");
    // The receipts' block: one ReceiptAccepted per receipt, for the dev worker.
    let accepted = events(2, "ponw", "ReceiptAccepted");
    assert_eq!(accepted.len(), receipts, "{ctx}");
    for e in &accepted {
        assert_eq!(e["data"]["worker"], json!(alice), "{ctx}");
        assert_eq!(e["data"]["client"], json!(bob), "{ctx}");
        assert_eq!(num(&e["data"]["tokens"]), 30, "{ctx}");
    }
    // The payout block: the worker's RewardPaid, counting those tokens.
    let paid = events(3, "ponw", "RewardPaid");
    let alice_paid: Vec<&Value> = paid
        .iter()
        .filter(|e| e["data"]["account"] == json!(alice))
        .collect();
    assert_eq!(alice_paid.len(), 1, "{ctx}");
    assert!(num(&alice_paid[0]["data"]["tokens"]) >= 30, "{ctx}");
    assert!(num(&alice_paid[0]["data"]["reward"]) > 0, "{ctx}");
}

/// The first transfer (in `block`) was mortal, polkadot.js hashed the header it fetched
/// to the node's block hash, and the transfer sent after its era was refused.
fn check_mortality(rpc: &RpcClient, report: &Value, block: &Value, ctx: &str) {
    // ...and it was mortal (polkadot.js's default): its birth block's hash, which
    // polkadot.js computed from the header it fetched, is the node's block hash.
    let mortal = block["block"]["extrinsics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|xt| {
            let bytes = hex::decode(xt.as_str()?.trim_start_matches("0x")).ok()?;
            SignedExtrinsic::decode(&mut bytes.as_slice()).ok()
        })
        .find(|xt| format!("{:?}", xt.hash()) == report["first"].as_str().unwrap());
    assert!(
        matches!(mortal.map(|xt| xt.era), Some(Era::Mortal(..))),
        "the first transfer is not mortal: {ctx}"
    );
    // polkadot.js hashes a fetched header to the node's block hash.
    let heads = &report["headHashes"];
    assert_eq!(heads["computed"], heads["node"], "{ctx}");
    let node_hash = rpc
        .call("chain_getBlockHash", json!([heads["number"]]))
        .unwrap();
    assert_eq!(heads["computed"], node_hash, "{ctx}");
    // A mortal transfer sent after its 4-block era ended is refused as Substrate
    // refuses it: the birth block its era gives at the current height is a later one,
    // whose hash the signature does not cover (InvalidTransaction::BadProof).
    assert_eq!(report["expiredMortal"], true, "{ctx}");
    let expired = report["expiredError"].as_str().unwrap_or_default();
    assert!(
        expired.starts_with("1010: Invalid Transaction: Transaction has a bad signature"),
        "{expired:?}: {ctx}"
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
