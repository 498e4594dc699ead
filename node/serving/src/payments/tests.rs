//! The ledger against clients that do not pay, pay with the wrong receipts, or pay for
//! other peers' sessions.

use super::*;
use neuroshard_network::NetworkKeypair;
use neuroshard_primitives::crypto::keypair_from_uri;
use sp_core::Pair as _;

const MODEL: Hash = Hash::repeat_byte(0x61);

fn layers() -> LayerRange {
    LayerRange::new(0, 10).unwrap()
}

fn key(uri: &str) -> Keypair {
    keypair_from_uri(uri).unwrap()
}

fn peer(seed: u8) -> PeerId {
    PeerId::from_public_key(
        &NetworkKeypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public(),
    )
}

/// The clients' escrow as a number of layer-tokens each can pay for.
struct Escrow(u64);

impl ClientFunds for Escrow {
    fn covers(&self, _client: &AccountId, receipts: &[&ReceiptBody]) -> anyhow::Result<bool> {
        let wanted: u64 = receipts
            .iter()
            .map(|b| u64::from(b.tokens()) * u64::from(b.layers.len()))
            .sum();
        Ok(wanted <= self.0)
    }
}

fn ledger(escrow: u64) -> PaymentLedger {
    let worker = key("//Bob").public().into();
    PaymentLedger::new(worker, MODEL, Arc::new(Escrow(escrow)))
}

/// Bob's receipt for positions `from..to` of `session`, counter-signed by `client`.
fn receipt(session: u8, seq: u32, (from, to): (u32, u32), client: &str) -> Receipt {
    let body = ReceiptBody {
        worker: key("//Bob").public().into(),
        client: key(client).public().into(),
        model: MODEL,
        layers: layers(),
        session: [session; 16],
        epoch: 0,
        seq,
        position_start: from,
        position_end: to,
        commitment: Hash::repeat_byte(1),
        input_commitment: Hash::repeat_byte(2),
        adapter: None,
    };
    Receipt::sign(body, &key("//Bob"), &key(client))
}

/// Positions `start..end` of `session` from `peer`, as the server runs them.
fn forward(
    l: &PaymentLedger,
    peer: PeerId,
    session: u8,
    (start, end): (u32, u32),
) -> Result<(), String> {
    l.admit_forward(peer, [session; 16], layers(), start, end - start)?;
    l.computed([session; 16], layers(), end);
    Ok(())
}

#[test]
fn a_client_that_does_not_pay_gets_one_request_and_one_increment_and_no_more() {
    let l = ledger(u64::MAX);
    let p = peer(1);
    assert_eq!(MAX_CREDIT, MAX_REQUEST + PAYMENT_INCREMENT);
    // No request, not even a new session's first, may leave more than the credit unpaid.
    assert!(forward(&l, p, 1, (0, MAX_CREDIT + 1)).is_err());
    // A prompt piece, and nothing after it unpaid.
    forward(&l, p, 2, (0, MAX_REQUEST)).unwrap();
    let due = forward(&l, p, 2, (MAX_REQUEST, MAX_REQUEST + 1)).unwrap_err();
    assert!(due.starts_with("payment due: positions 0..128"), "{due}");
    // A short prompt, then decoding rounds while they start within the increment.
    forward(&l, p, 1, (0, 20)).unwrap();
    forward(&l, p, 1, (20, 32)).unwrap();
    forward(&l, p, 1, (32, 37)).unwrap();
    assert!(forward(&l, p, 1, (37, 40)).is_err());
    // Paying for what was computed lets it go on: a prompt piece, rounds.
    l.pay(p, MODEL, layers(), vec![receipt(1, 0, (0, 37), "//Dave")])
        .unwrap();
    forward(&l, p, 1, (37, 37 + MAX_REQUEST)).unwrap();
    l.pay(p, MODEL, layers(), vec![receipt(1, 1, (37, 165), "//Dave")])
        .unwrap();
    forward(&l, p, 1, (165, 180)).unwrap();
    forward(&l, p, 1, (180, 197)).unwrap();
    assert!(forward(&l, p, 1, (198, 199)).is_err());
}

#[test]
fn only_the_sessions_peer_uses_or_pays_for_it() {
    let l = ledger(u64::MAX);
    let (owner, other) = (peer(1), peer(2));
    forward(&l, owner, 1, (0, 40)).unwrap();
    let e = forward(&l, other, 1, (0, 4)).unwrap_err();
    assert!(e.contains("another peer"), "{e}");
    let paid = l.pay(
        other,
        MODEL,
        layers(),
        vec![receipt(1, 0, (0, 40), "//Dave")],
    );
    assert!(paid.is_err());
    assert!(
        forward(&l, owner, 1, (40, MAX_CREDIT + 1)).is_err(),
        "the session is still unpaid"
    );
}

#[test]
fn payments_that_do_not_pay_change_nothing() {
    let l = ledger(100);
    let p = peer(1);
    forward(&l, p, 1, (0, 40)).unwrap();
    let mut forged = receipt(1, 0, (0, 40), "//Dave");
    forged.client_signature = receipt(1, 0, (0, 41), "//Dave").client_signature;
    let mut other_worker = receipt(1, 0, (0, 40), "//Dave");
    other_worker.body.worker = key("//Ferdie").public().into();
    let bad = [
        vec![],
        vec![forged],
        vec![other_worker],
        // Another session's receipt.
        vec![receipt(2, 0, (0, 40), "//Dave")],
        // Signed, but the escrow (100 layer-tokens) cannot pay 40 x 10.
        vec![receipt(1, 0, (0, 40), "//Dave")],
        (0..=MAX_PAY_RECEIPTS as u32)
            .map(|i| receipt(1, i, (i, i + 1), "//Dave"))
            .collect(),
    ];
    for receipts in bad {
        let n = receipts.len();
        assert!(l.pay(p, MODEL, layers(), receipts).is_err(), "{n} receipts");
    }
    assert!(
        forward(&l, p, 1, (40, MAX_CREDIT + 1)).is_err(),
        "still unpaid"
    );
    assert!(l.take_quiet(Duration::ZERO).is_empty(), "nothing kept");
}

#[test]
fn the_escrow_must_cover_every_receipt_of_the_client_held_here() {
    // Enough for 8 positions on 10 layers, across sessions.
    let l = ledger(80);
    let p = peer(1);
    forward(&l, p, 1, (0, 6)).unwrap();
    forward(&l, p, 2, (0, 6)).unwrap();
    l.pay(p, MODEL, layers(), vec![receipt(1, 0, (0, 6), "//Dave")])
        .unwrap();
    let e = l
        .pay(p, MODEL, layers(), vec![receipt(2, 0, (0, 6), "//Dave")])
        .unwrap_err();
    assert!(e.contains("escrow"), "{e}");
}

#[test]
fn a_peer_deep_in_debt_opens_no_new_session() {
    let l = ledger(u64::MAX);
    let p = peer(1);
    let prompt = MAX_REQUEST;
    let mut opened = 0u32;
    while forward(&l, p, opened as u8, (0, prompt)).is_ok() {
        opened += 1;
        assert!(opened < 100);
    }
    assert_eq!(opened, MAX_PEER_DEBT / prompt + 1);
    // Another peer is not refused for it.
    forward(&l, peer(2), 200, (0, prompt)).unwrap();
    // Paying one session's debt lets the peer open one more.
    l.pay(
        p,
        MODEL,
        layers(),
        vec![receipt(0, 0, (0, prompt), "//Dave")],
    )
    .unwrap();
    forward(&l, p, 201, (0, 8)).unwrap();
}

#[test]
fn kept_receipts_are_handed_over_once_their_session_is_quiet() {
    let l = ledger(u64::MAX);
    let p = peer(1);
    forward(&l, p, 1, (0, 40)).unwrap();
    let paid = vec![
        receipt(1, 0, (0, 33), "//Dave"),
        receipt(1, 1, (33, 40), "//Dave"),
    ];
    l.pay(p, MODEL, layers(), paid.clone()).unwrap();
    // A payment handed back twice is kept once.
    l.pay(p, MODEL, layers(), paid.clone()).unwrap();
    assert!(
        l.take_quiet(Duration::from_secs(3600)).is_empty(),
        "not quiet yet"
    );
    assert_eq!(l.take_quiet(Duration::ZERO), paid);
    assert!(l.take_quiet(Duration::ZERO).is_empty(), "handed over once");
}

/// A client's escrow in a genesis state (10 NSHD), with its release requested or not.
fn escrow_state(client: &AccountId, release: bool) -> neuroshard_runtime::StateDb {
    use neuroshard_ponw::fixtures;
    let params = fixtures::params(fixtures::model(MODEL, 30));
    let mut state = fixtures::Genesis::new(params)
        .fund(client.clone(), 100 * neuroshard_primitives::UNIT)
        .escrow(client.clone(), 10 * neuroshard_primitives::UNIT)
        .build();
    if release {
        let ctx = neuroshard_support::BlockContext {
            number: 1,
            parent_hash: Hash::zero(),
            slot: 1,
            author: client.clone(),
            epoch: 0,
            minute: 0,
            randomness: Hash::zero(),
        };
        state
            .commit(|o| neuroshard_ponw::escrow::request_release(o, &ctx, client))
            .unwrap();
    }
    state
}

/// The escrow release race (`bench econ`): a client that asked for its escrow back can
/// withdraw it before the receipts of work served now are in a block, so a worker
/// serves it no more, however much escrow is left.
#[test]
fn a_client_releasing_its_escrow_is_not_covered() {
    let client: AccountId = key("//Dave").public().into();
    let r = receipt(1, 0, (0, 32), "//Dave");
    let bodies = [&r.body];
    let open = escrow_state(&client, false);
    assert!(escrow_covers(&open, &client, &bodies).unwrap());
    let releasing = escrow_state(&client, true);
    assert!(!escrow_covers(&releasing, &client, &bodies).unwrap());
}

/// The built-in chains give claims of unsubmitted receipts time to land; a chain whose
/// receipt window is shorter than the claim delay is reported.
#[test]
fn a_receipt_window_shorter_than_the_claim_delay_is_reported() {
    for name in ["dev", "local"] {
        let spec = neuroshard_chain_spec::load(name).unwrap();
        let params = &spec.genesis.params;
        assert!(
            receipt_horizon(params) > UNCLAIMED_AFTER + CLAIM_CHECK,
            "{name}"
        );
        assert_eq!(claim_horizon_problem(params), None, "{name}");
    }
    let mut params = neuroshard_chain_spec::load("dev").unwrap().genesis.params;
    params.ponw.receipt_epoch_window = 1;
    params.system.epoch_length = 5;
    let problem = claim_horizon_problem(&params).expect("10 s is too short");
    assert!(problem.contains("as little as 10 s"), "{problem}");
}
