//! The freeloader defence and self-dealing, over the network with the real model in
//! separate node processes:
//! - Alice, the only validator, serves 0-10 and probes every worker each minute;
//! - Bob serves 10-30 honestly;
//! - Charlie serves 10-30 but refuses every request (`--fault-refuse-requests`) while
//!   still proving each minute that he holds the model;
//! - Dave serves 0-10 and is the inference client of the colluding pair Dave + Bob;
//! - Eve is online and registered as a worker for 0-10 but holds no shard.
//!
//! Checked: Bob's and Dave's minutes are credited and paid `uptime x 1.0`; Charlie's
//! never are (his probes fail: `ChallengeMissed` says he heartbeated but was not
//! probed successfully), nor Eve's; and after Dave's generation through Bob's shards is
//! billed and paid, the pair's holdings (free + reserved + bonded) changed by no more
//! than the uptime they were paid meanwhile (the work minted no more than its fees
//! burned, and the transaction fees are lost): trading work with themselves did not pay.

use neuroshard_primitives::{Call, LayerRange, PonwCall};
use neuroshard_tests::chain::{self, account_at, address, amount};
use neuroshard_tests::http::request;
use neuroshard_tests::process::joint_log;
use neuroshard_tests::spec::write_spec_with;
use neuroshard_tests::{wait_for, NodeProcess, RpcClient};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const UNIT: u128 = 1_000_000_000_000;
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// Two wall-clock minute boundaries and an epoch boundary, with margin.
const PROOF_TIMEOUT: Duration = Duration::from_secs(300);

fn start(spec: &Path, dir: &Path, name: &str, extra: &[&str]) -> NodeProcess {
    NodeProcess::run_named(spec, dir, name, extra).unwrap()
}

/// free + reserved + bonded of `uri` after block `hash`.
fn holdings(rpc: &RpcClient, uri: &str, hash: &Value) -> u128 {
    let a = account_at(rpc, uri, hash).unwrap();
    a.free + a.reserved + a.bonded
}

/// What the chain's events say so far, by SS58 account.
#[derive(Default, Debug)]
struct Seen {
    registered: BTreeSet<String>,
    escrow: BTreeSet<String>,
    /// Uptime minutes and total reward paid, per account, and in which blocks.
    uptime_paid: BTreeMap<String, u64>,
    rewards: Vec<(u64, String, u128, u64)>,
    probes: BTreeMap<String, (u32, u32)>,
    /// (heartbeat, probed) of each missed minute, per worker.
    missed: BTreeMap<String, Vec<(bool, bool)>>,
    /// (block, worker, client, fee, burned) of accepted receipts.
    receipts: Vec<(u64, String, String, u128, u128)>,
    next: u64,
}

impl Seen {
    fn poll(&mut self, rpc: &RpcClient) -> anyhow::Result<()> {
        let best = rpc.best_number()?;
        while self.next <= best {
            let n = self.next;
            let events = rpc.call("neuroshard_events", json!([n]))?;
            for e in events.as_array().cloned().unwrap_or_default() {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                match e["event"].as_str() {
                    Some("WorkerRegistered") => {
                        self.registered.insert(s("worker"));
                    }
                    Some("EscrowDeposited") => {
                        self.escrow.insert(s("client"));
                    }
                    Some("RewardPaid") => {
                        let minutes = e["uptimeMinutes"].as_u64().unwrap_or(0);
                        *self.uptime_paid.entry(s("account")).or_default() += minutes;
                        self.rewards
                            .push((n, s("account"), amount(&e["reward"]), minutes));
                    }
                    Some("LivenessProbed") => {
                        let p = self.probes.entry(s("worker")).or_default();
                        if e["answered"] == true {
                            p.0 += 1;
                        } else {
                            p.1 += 1;
                        }
                    }
                    Some("ChallengeMissed") => self
                        .missed
                        .entry(s("worker"))
                        .or_default()
                        .push((e["heartbeat"] == true, e["probed"] == true)),
                    Some("ReceiptAccepted") => {
                        self.receipts.push((
                            n,
                            s("worker"),
                            s("client"),
                            amount(&e["fee"]),
                            amount(&e["burned"]),
                        ));
                    }
                    _ => {}
                }
            }
            self.next += 1;
        }
        Ok(())
    }
}

#[test]
fn freeloaders_earn_no_uptime_and_a_colluding_pair_does_not_profit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |params| {
        // Capacity is tested in attacks/sybil_uptime.rs; here every answered probe proves
        // a whole minute, so honest uptime pays `minutes x 1.0`.
        params["ponw"]["probe"]["reference_throughput"] = 1.into();
        // Spot checks are tested elsewhere; here no receipt is sampled, so each settles
        // when its check window closes and the pair's accounting closes at the epoch
        // boundary after that.
        params["ponw"]["spot_check_permill"] = 0.into();
    })
    .unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-10").unwrap();
    let peer = |name: &str, key: &str, extra: &[&str]| {
        let mut args = vec!["--key", key, "--bootnodes", &boot];
        args.extend_from_slice(extra);
        start(&spec, dir.path(), name, &args)
    };
    let b = peer("b", "//Bob", &["--shards", "10-30"]);
    let c = peer(
        "c",
        "//Charlie",
        &["--shards", "10-30", "--fault-refuse-requests"],
    );
    let d = peer("d", "//Dave", &["--shards", "0-10"]);
    let e = peer("e", "//Eve", &[]);
    let nodes = [&a, &b, &c, &d, &e];
    let rpc = a.rpc();
    // Eve registers for a shard she does not hold.
    let params = rpc.call("neuroshard_params", json!([])).unwrap();
    let model = chain::parse_hash(&params["ponw"]["model"]["hash"]).unwrap();
    let register = Call::Ponw(PonwCall::RegisterWorker {
        model,
        shards: vec![LayerRange::new(0, 10).unwrap()],
    });
    chain::submit_and_wait(&rpc, "//Eve", register, Duration::from_secs(60)).unwrap();
    for node in [&a, &b, &c, &d] {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let (alice, bob, charlie, dave, eve) = (
        address("//Alice"),
        address("//Bob"),
        address("//Charlie"),
        address("//Dave"),
        address("//Eve"),
    );

    // Baseline of the pair, once both are registered and Dave's escrow is locked.
    let mut seen = Seen {
        next: 1,
        ..Seen::default()
    };
    wait_for(
        "Bob and Dave registered, Dave's escrow",
        Duration::from_secs(120),
        || {
            seen.poll(&rpc)?;
            Ok((seen.registered.contains(&bob)
                && seen.registered.contains(&dave)
                && seen.escrow.contains(&dave))
            .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    let base_number = rpc.best_number().unwrap();
    let base_hash = rpc
        .call("chain_getBlockHash", json!([base_number]))
        .unwrap();
    let pair_before = holdings(&rpc, "//Bob", &base_hash) + holdings(&rpc, "//Dave", &base_hash);

    // Dave's client generates once it has found the 10-30 providers; that range can
    // only run on Bob (Charlie refuses).
    wait_for("Dave to find Bob's shard", Duration::from_secs(120), || {
        let v = d.rpc().call("neuroshard_shards", json!([]))?;
        let found = v["providers"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["account"] == bob.as_str() && p["shards"].to_string().contains("10-30"))
        });
        Ok(found.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    let body = json!({"prompt": "The capital of France is", "max_tokens": 16, "temperature": 0});
    let r = request(
        d.api_port(),
        "POST",
        "/v1/completions",
        Some(&body.to_string()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, joint_log(&nodes));

    // Wait for: the generation's receipts accepted and paid at an epoch boundary; Bob's
    // and Dave's uptime paid; Charlie's and Eve's probes failed and their minutes missed;
    // a probe of Alice by herself passed.
    let paid_epoch_block = wait_for("receipts, uptime and missed minutes", PROOF_TIMEOUT, || {
        seen.poll(&rpc)?;
        let bob_receipt = seen
            .receipts
            .iter()
            .filter(|(_, w, c, ..)| *w == bob && *c == dave)
            .map(|(n, ..)| *n)
            .max();
        let Some(receipt_block) = bob_receipt else {
            return Ok(None);
        };
        // The first payout of Bob's tokens after the receipts' block pays them (earlier
        // ones, while their earnings were held, paid uptime only).
        let payout = seen
            .rewards
            .iter()
            .find(|(n, who, reward, minutes)| {
                *n > receipt_block && *who == bob && *reward > u128::from(*minutes) * UNIT
            })
            .map(|(n, ..)| *n);
        let done = payout.is_some()
            && seen.uptime_paid.get(&bob).copied().unwrap_or(0) >= 1
            && seen.uptime_paid.get(&dave).copied().unwrap_or(0) >= 1
            && seen
                .missed
                .get(&charlie)
                .is_some_and(|m| m.contains(&(true, false)))
            && seen.probes.get(&eve).is_some_and(|p| p.1 >= 1)
            // Alice's first probe of herself can fail: it may be drawn from her genesis
            // registration (every shard) before her re-registration for the one shard
            // she serves is in a block. A later minute's must pass.
            && seen.probes.get(&alice).is_some_and(|p| p.0 >= 1);
        Ok(done.then_some(payout).flatten())
    })
    .unwrap_or_else(|e| panic!("{e}\n{seen:#?}\n{}", joint_log(&nodes)));
    println!("events seen: {seen:#?}");

    // Freeloaders: no uptime ever, for the one that refuses nor the one without a shard.
    assert_eq!(
        seen.uptime_paid.get(&charlie).copied().unwrap_or(0),
        0,
        "{seen:#?}"
    );
    assert_eq!(
        seen.uptime_paid.get(&eve).copied().unwrap_or(0),
        0,
        "{seen:#?}"
    );
    assert_eq!(
        seen.probes.get(&charlie).map_or(0, |p| p.0),
        0,
        "Charlie never answers"
    );
    assert_eq!(
        seen.probes.get(&eve).map_or(0, |p| p.0),
        0,
        "Eve cannot answer"
    );
    assert!(
        seen.missed[&eve]
            .iter()
            .all(|&(heartbeat, probed)| !heartbeat && !probed),
        "Eve shows no chunk either: {seen:#?}"
    );
    assert!(seen.probes.get(&bob).is_some_and(|p| p.0 >= 1));
    assert!(
        seen.probes.get(&alice).is_some_and(|p| p.0 >= 1),
        "the validator probes itself\n{}",
        joint_log(&nodes)
    );
    // Honest uptime is paid by the formula (no token work of Alice's in this test).
    for (_, who, reward, minutes) in &seen.rewards {
        if *who == alice {
            assert_eq!(*reward, u128::from(*minutes) * UNIT, "{seen:#?}");
        }
    }

    // The colluding pair: from the baseline to the payout of the generation's epoch.
    let end_hash = rpc
        .call("chain_getBlockHash", json!([paid_epoch_block]))
        .unwrap();
    let pair_after = holdings(&rpc, "//Bob", &end_hash) + holdings(&rpc, "//Dave", &end_hash);
    let paid_in = |who: &String, n: &u64| {
        (base_number + 1..=paid_epoch_block).contains(n) && (*who == bob || *who == dave)
    };
    let uptime_paid: u128 = seen
        .rewards
        .iter()
        .filter(|(n, who, _, _)| paid_in(who, n))
        .map(|(_, _, _, minutes)| u128::from(*minutes) * UNIT)
        .sum();
    let token_rewards: u128 = seen
        .rewards
        .iter()
        .filter(|(n, who, _, _)| paid_in(who, n))
        .map(|(_, _, reward, minutes)| reward - u128::from(*minutes) * UNIT)
        .sum();
    let (fees, burned) = seen
        .receipts
        .iter()
        .filter(|(_, _, client, ..)| *client == dave)
        .fold((0, 0), |(f, b), (.., fee, burn)| (f + fee, b + burn));
    let net = pair_after as i128 - pair_before as i128 - uptime_paid as i128;
    println!(
        "colluding pair Bob + Dave: fees {fees}, burned {burned}, token rewards minted {token_rewards}; \
         holdings {pair_before} -> {pair_after}, uptime paid {uptime_paid}, net of uptime {net}"
    );
    assert!(
        fees > 0 && token_rewards > 0,
        "the pair traded work: {seen:#?}"
    );
    assert!(
        token_rewards <= burned,
        "what the work minted never exceeds what its fees burned"
    );
    assert!(net <= 0, "self-dealing must not pay: net {net}");
}
