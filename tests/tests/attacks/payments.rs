//! Clients who never pay (issue 23, hole 1): a client gets its outputs before it pays, so
//! a provider serving it on credit must stop when the credit runs out, and must be able
//! to put on chain what the client signed without the client.

use super::*;

/// Mallory (//Ferdie, `--fault-never-pay`) asks for a long completion through Bob's
/// layers 10-30 and pays nothing; Dave (`--fault-never-submit`) asks for one (with a
/// prompt longer than one request) and hands
/// Bob the counter-signed receipts as they fall due but never submits them. Before the
/// defence both got their whole completions and Bob was paid for neither. Now Bob
/// refuses Mallory's session after one increment (`PAYMENT_INCREMENT`, 32 positions, plus
/// one draft round; a long prompt would have to come in pieces, each paid before the
/// next), and submits Dave's receipts himself once the session is quiet, so
/// he is paid for every position he computed for Dave; Alice's honest completion pays
/// Bob as before, and blocks keep being finalised.
#[test]
fn a_client_that_does_not_pay_is_served_one_increment_and_one_that_does_not_submit_pays_anyway() {
    let dir = tempfile::tempdir().unwrap();
    // Epochs of 40 one-second blocks: Bob claims Dave's receipts 20 s after the session
    // goes quiet, and a receipt is accepted up to `receipt_epoch_window` (2) epochs after
    // its own. With 10-block epochs a slow (loaded) generation plus the claim delay
    // outlived the window and the claim was refused as `stale_epoch` (a CI run with
    // more parallel tests did exactly that).
    let spec = write_spec_with(dir.path(), "dev", 1000, 40, |_| {}).unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-10").unwrap();
    let b = worker(&spec, dir.path(), ("b", "//Bob"), &boot, "10-30", &[]);
    let m = worker(
        &spec,
        dir.path(),
        ("m", "//Ferdie"),
        &boot,
        "0-10",
        &["--fault-never-pay"],
    );
    let d = worker(
        &spec,
        dir.path(),
        ("d", "//Dave"),
        &boot,
        "0-10",
        &["--fault-never-submit"],
    );
    let nodes = [&a, &b, &m, &d];
    for node in nodes {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let (bob, mallory, dave) = (address("//Bob"), address("//Ferdie"), address("//Dave"));
    let bob_peer = peer_id(&b);
    for client in [&m, &d] {
        wait_provider(&client.rpc(), &bob_peer, &bob, &nodes);
    }
    let long = json!({"prompt": "1, 2, 3, 4, 5, 6, 7,", "max_tokens": 96, "temperature": 0});

    // Mallory: served one increment, then refused.
    let r = post_completion(&m, &long).unwrap();
    println!("Mallory: {} {}", r.status, r.body);
    assert_ne!(
        r.status,
        200,
        "Mallory got her completion unpaid\n{}",
        joint_log(&nodes)
    );
    let refusal = b
        .log_text()
        .lines()
        .chain(r.body.lines())
        .find_map(|l| {
            l.split("payment due: positions 0..")
                .nth(1)
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no refusal for payment\n{}", joint_log(&nodes)));
    let computed: u32 = refusal
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{refusal}"));
    // Refused at the first round starting past 32 unpaid positions; a round is at most
    // 1 + 16 draft positions.
    assert!(
        computed <= 32 + 17,
        "Bob computed {computed} positions unpaid"
    );

    // Dave: the whole completion, paid by the receipts Bob submits (once Bob sees the
    // escrow Dave's node locks at start: Bob serves no client whose escrow cannot pay).
    let (bob_rpc, mut bob_next) = (b.rpc(), 1);
    wait_for("Dave's escrow, seen by Bob", CHECK_TIMEOUT, || {
        let events = bob_rpc.new_events(&mut bob_next)?;
        Ok(events
            .iter()
            .any(|e| e["event"] == "EscrowDeposited" && e["client"] == dave.as_str())
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", joint_log(&nodes)));
    // A prompt of ~170 tokens: it goes to Bob in two pieces, the first paid before the
    // second is served.
    let counting: Vec<String> = (1..=60).map(|i| i.to_string()).collect();
    let long_prompt =
        json!({"prompt": counting.join(", ") + ",", "max_tokens": 96, "temperature": 0});
    let r = post_completion(&d, &long_prompt).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, joint_log(&nodes));
    let usage: Value = serde_json::from_str(&r.body).unwrap();
    let usage = &usage["usage"];
    let accepted =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap() - 1;
    // And Alice, honest, pays Bob herself.
    complete(&a, &nodes);

    let rpc = a.rpc();
    let (mut next, mut paid_by) = (1, std::collections::HashMap::<String, u64>::new());
    wait_for(
        "Bob paid for Dave's and Alice's work",
        CHECK_TIMEOUT,
        || {
            for e in rpc.new_events(&mut next)? {
                if e["event"] == "ReceiptAccepted" && e["worker"] == bob.as_str() {
                    let client = e["client"].as_str().unwrap_or_default().to_string();
                    *paid_by.entry(client).or_default() += e["tokens"].as_u64().unwrap_or(0);
                }
            }
            let dave_paid = paid_by.get(&dave).copied().unwrap_or(0);
            Ok((dave_paid >= accepted && paid_by.contains_key(&address("//Alice"))).then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {paid_by:?} (Dave accepted {accepted})\n{}",
            joint_log(&nodes)
        )
    });
    assert_eq!(
        paid_by[&dave], accepted,
        "each of Dave's positions paid once"
    );
    assert!(b
        .log_text()
        .contains("submitted receipts a client counter-signed but did not submit"));
    assert!(!paid_by.contains_key(&mallory), "{paid_by:?}");
    println!("Bob paid for tokens by client: {paid_by:?}; Mallory was refused after {computed} positions");
    finality_advances(&rpc, &nodes);
}
