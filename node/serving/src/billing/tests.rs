//! Billing on the tiny random Llama: a session over this node's shards becomes receipts
//! whose signatures verify and whose work a validator finds archived; a worker's receipt
//! that does not match what the client asked or saw is refused.

use super::*;
use neuroshard_inference::generate::client_for;
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_inference::{decode, DecodeOptions, PipelineClient, Shard};
use neuroshard_primitives::crypto::{keypair_from_uri, verify_batch};
use neuroshard_primitives::{Hash, LayerRange};

const RANGES: [(usize, usize); 2] = [(0, 3), (3, 6)];

fn model() -> Hash {
    Hash::repeat_byte(0x51)
}

fn local_route() -> Vec<Arc<InProcessTransport>> {
    let dir = tempfile::tempdir().unwrap();
    let source: ModelSource = neuroshard_inference::tiny::write_tiny_llama(dir.path(), 5).unwrap();
    let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
    RANGES
        .iter()
        .map(|&(a, b)| {
            let shard = Shard::new(weights.slice(a..b).unwrap(), model()).unwrap();
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect()
}

/// A finished greedy session over `route`; returns the client and the accepted length.
fn session(route: &[Arc<InProcessTransport>]) -> (PipelineClient, u32) {
    let mut client = client_for(route, model(), [7; 16]).unwrap();
    let opts = DecodeOptions {
        max_tokens: 12,
        ..Default::default()
    };
    let out = decode(&mut client, &[1, 5, 9, 13], &opts, None, &mut |_| {}).unwrap();
    (client, out.accepted_positions as u32)
}

fn hops(route: &[Arc<InProcessTransport>]) -> Vec<Vec<Provider>> {
    route
        .iter()
        .map(|t| vec![Provider::Local(t.clone())])
        .collect()
}

#[test]
fn a_local_session_bills_one_signed_receipt_per_hop() {
    let route = local_route();
    let (client, until) = session(&route);
    let key = keypair_from_uri("//Alice").unwrap();
    let me: AccountId = key.public().into();
    let served = client.served(until);
    let receipts = bill_session(&key, &key, 4, &served, &hops(&route)).unwrap();
    assert_eq!(receipts.len(), RANGES.len());
    for ((receipt, &(a, b)), t) in receipts.iter().zip(&RANGES).zip(&route) {
        let body = &receipt.body;
        body.check_shape().unwrap();
        assert_eq!(
            (body.worker.clone(), body.client.clone()),
            (me.clone(), me.clone())
        );
        assert_eq!(
            (body.epoch, body.seq, body.position_start, body.position_end),
            (4, 0, 0, until)
        );
        assert_eq!(body.layers, LayerRange::new(a as u16, b as u16).unwrap());
        assert_eq!(body.session, client.session());
        assert_eq!(verify_batch(&receipt.signed_messages()), Ok(()));
        // The validator's way back from the receipt finds the archived material.
        assert!(t.shard().material(&work_of(body).id()).is_some());
    }
    // Nothing is left to bill: the positions are recorded once.
    assert!(bill_session(&key, &key, 4, &served, &hops(&route)).is_err());
}

#[test]
fn receipts_that_do_not_match_the_work_are_refused() {
    let route = local_route();
    let (client, until) = session(&route);
    let bob = keypair_from_uri("//Bob").unwrap();
    let terms = BillingTerms {
        client: keypair_from_uri("//Alice").unwrap().public().into(),
        epoch: 2,
    };
    let served = client.served(until);
    let work = WorkRequest {
        session: client.session(),
        until,
    };
    let honest = sign_work(&bob, &terms, route[1].record_work(&work).unwrap());
    let bob_account: AccountId = bob.public().into();
    let check = |r: &WorkerReceipt, worker: &AccountId, terms: &BillingTerms, hop: usize| {
        check_worker_receipt(r, worker, terms, &*route[hop], &served[hop])
    };
    check(&honest, &bob_account, &terms, 1).unwrap();
    // Signed by another worker than the route's provider.
    let alice_account = terms.client.clone();
    assert!(check(&honest, &alice_account, &terms, 1).is_err());
    // For other terms than the client asked.
    let other_epoch = BillingTerms {
        epoch: 3,
        ..terms.clone()
    };
    assert!(check(&honest, &bob_account, &other_epoch, 1).is_err());
    // Checked against the other hop (other layers and inputs).
    assert!(check(&honest, &bob_account, &terms, 0).is_err());
    // A body changed after signing (more positions claimed) fails its signature.
    let mut inflated = honest.clone();
    inflated.body.position_start = 1;
    let err = check(&inflated, &bob_account, &terms, 1).unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    // A body re-signed for another session fails the session check.
    let mut elsewhere = honest.clone();
    elsewhere.body.session = [8; 16];
    elsewhere.worker_signature = elsewhere.body.sign_as_worker(&bob);
    let err = check(&elsewhere, &bob_account, &terms, 1).unwrap_err();
    assert!(err.to_string().contains("another session"), "{err}");
    // A body re-signed for inputs the hop was not sent fails the input check.
    let mut forged = honest.clone();
    forged.body.input_commitment = Hash::repeat_byte(9);
    forged.worker_signature = forged.body.sign_as_worker(&bob);
    let err = check(&forged, &bob_account, &terms, 1).unwrap_err();
    assert!(
        err.to_string().contains("does not attest the inputs"),
        "{err}"
    );
}

#[test]
fn work_of_inverts_receipt_body() {
    let work = WorkRecord {
        model: model(),
        layers: LayerRange::new(3, 9).unwrap(),
        session: [3; 16],
        seq: 4,
        position_start: 10,
        position_end: 17,
        commitment: Hash::repeat_byte(1),
        input_commitment: Hash::repeat_byte(2),
        adapter: Some(Hash::repeat_byte(3)),
    };
    let terms = BillingTerms {
        client: AccountId::from([5; 32]),
        epoch: 8,
    };
    let body = receipt_body(AccountId::from([6; 32]), &terms, &work);
    assert_eq!(work_of(&body), work);
}

#[test]
fn a_session_paid_by_another_account_is_signed_by_the_node_as_worker() {
    let route = local_route();
    let (client, until) = session(&route);
    let node = keypair_from_uri("//Alice").unwrap();
    let payer = keypair_from_uri("//Bob").unwrap();
    let served = client.served(until);
    let receipts = bill_session(&payer, &node, 4, &served, &hops(&route)).unwrap();
    assert_eq!(receipts.len(), RANGES.len());
    for receipt in &receipts {
        let worker: AccountId = node.public().into();
        let paying: AccountId = payer.public().into();
        assert_eq!(
            (&receipt.body.worker, &receipt.body.client),
            (&worker, &paying)
        );
        assert_eq!(verify_batch(&receipt.signed_messages()), Ok(()));
    }
}

#[test]
fn a_session_billed_as_it_goes_pays_each_position_once() {
    let route = local_route();
    let (client, until) = session(&route);
    let key = keypair_from_uri("//Alice").unwrap();
    let providers = hops(&route);
    let mut bill = SessionBill::new(&key, &key, &providers, true);
    // This node's own shards are never paid along the way.
    assert!(!bill.due(&[0, 0], PAYMENT_INCREMENT * 4));
    // Paid at 6 and at 9 accepted positions, then at the end; the end again bills nothing.
    for at in [6, 9, until, until] {
        bill.pay_all(4, &client.served(at)).unwrap();
    }
    let receipts = bill.into_receipts();
    assert_eq!(receipts.len(), 3 * RANGES.len());
    for (hop, &(a, _)) in RANGES.iter().enumerate() {
        let spans: Vec<_> = receipts
            .iter()
            .filter(|r| r.body.layers.start == a as u16)
            .map(|r| (r.body.seq, r.body.position_start, r.body.position_end))
            .collect();
        assert_eq!(spans, [(0, 0, 6), (1, 6, 9), (2, 9, until)], "hop {hop}");
    }
    assert!(receipts
        .iter()
        .all(|r| verify_batch(&r.signed_messages()).is_ok()));
}
