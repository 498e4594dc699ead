//! Who pays for a call that fails: an extrinsic in a block pays its fee before its call
//! runs, so a failed call is included, charged and reported (`ExtrinsicFailed`), its
//! effects rolled back; free calls that fail stay out of blocks; and the pool's cheap
//! checks refute a receipt batch of bad signatures from a sample, without running it.

use crate::tests::{account, receipt, transfer, Chain};
use crate::{DispatchError, TransactionError, Validation};
use neuroshard_primitives::{Call, Event, PonwCall, Receipt, RejectReason, SignedExtrinsic};

fn gossip(seed: u8) -> Validation {
    Validation::Gossip {
        sample_seed: [seed; 32],
    }
}

fn validate(chain: &Chain, xt: &SignedExtrinsic, v: Validation) -> Result<(), TransactionError> {
    chain
        .runtime
        .validate_transaction(
            &chain.state,
            &chain.head.hash(),
            xt,
            chain.head.slot() + 1,
            v,
        )
        .map(|_| ())
}

fn nonce(chain: &Chain, uri: &str) -> u64 {
    chain
        .runtime
        .account(&chain.state, &account(uri))
        .unwrap()
        .nonce
}

fn submit(receipts: Vec<Receipt>) -> Call {
    Call::Ponw(PonwCall::SubmitReceipts { receipts })
}

#[test]
fn a_failed_call_is_included_pays_its_fee_and_changes_nothing_else() {
    let mut chain = Chain::new();
    let (alice, bob) = (chain.free("//Alice"), chain.free("//Bob"));
    let xt = chain.sign("//Alice", 0, transfer("//Bob", alice * 2));
    let fee = chain.runtime.fee_of(&chain.state, &xt).unwrap();
    // This node's own user is told at once, before paying; a peer's copy passes the
    // cheap checks (the sender can pay the fee).
    assert!(matches!(
        validate(&chain, &xt, Validation::DryRun),
        Err(TransactionError::Call(DispatchError::Balances(_)))
    ));
    validate(&chain, &xt, gossip(1)).unwrap();

    let genesis_copy = Chain::new();
    let (block, events, rejected) = chain.produce(vec![xt.clone()]);
    assert_eq!((block.extrinsics.len(), rejected), (1, 0));
    assert_eq!(chain.free("//Alice"), alice - fee);
    assert_eq!(chain.free("//Bob"), bob);
    assert_eq!(nonce(&chain, "//Alice"), 1, "the nonce is used: no replay");
    assert!(events.contains(&Event::FeeBurned {
        who: account("//Alice"),
        amount: fee
    }));
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ExtrinsicFailed {
                dispatch_error,
                dispatch_info,
                extrinsic,
                who,
                fee,
                error,
            } => {
                // Substrate's fields: the Balances pallet's InsufficientBalance, paid.
                let insufficient = neuroshard_support::error_index(
                    &neuroshard_balances::Error::InsufficientBalance {
                        needed: 0,
                        available: 0,
                    },
                );
                assert_eq!(
                    *dispatch_error,
                    neuroshard_primitives::DispatchError::Module(
                        neuroshard_primitives::ModuleError {
                            index: 0,
                            error: [insufficient, 0, 0, 0]
                        }
                    )
                );
                assert_eq!(insufficient, 0, "the first variant of balances::Error");
                assert_eq!(dispatch_info.pays_fee, neuroshard_primitives::Pays::Yes);
                Some((*extrinsic, who.clone(), *fee, error.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(
        (failed[0].0, &failed[0].1, failed[0].2),
        (xt.hash(), &account("//Alice"), fee)
    );
    assert!(failed[0].3.contains("balances"), "{}", failed[0].3);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Transfer { .. })),
        "the failed call's own events are rolled back with it"
    );

    // An importer executes the block to the same state and events.
    let mut importer = genesis_copy;
    assert_eq!(importer.import(&block).unwrap(), events);
    assert_eq!(importer.state.root(), chain.state.root());
}

#[test]
fn a_free_call_that_fails_stays_out_of_the_block() {
    let mut chain = Chain::new();
    chain.produce(vec![]);
    // //Charlie is no worker: his heartbeat fails, and being free it cannot pay for that.
    let xt = chain.sign("//Charlie", 0, chain.heartbeat("//Charlie"));
    assert_eq!(chain.runtime.fee_of(&chain.state, &xt).unwrap(), 0);
    assert!(
        validate(&chain, &xt, gossip(1)).is_err(),
        "free calls are dry-run"
    );
    let charlie = chain.free("//Charlie");
    let (block, events, rejected) = chain.produce(vec![xt]);
    assert_eq!((block.extrinsics.len(), rejected), (0, 1));
    assert_eq!(nonce(&chain, "//Charlie"), 0);
    assert_eq!(chain.free("//Charlie"), charlie);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::ExtrinsicFailed { .. })));
}

#[test]
fn the_pool_refutes_bad_receipt_signatures_from_a_sample_and_runs_no_batch() {
    let mut chain = Chain::new();
    let good: Vec<Receipt> = (1..=200).map(|seq| receipt("//Bob", seq, 10, 0)).collect();
    let mut bad = good.clone();
    for r in &mut bad {
        r.client_signature = r.worker_signature;
    }
    let bad_xt = chain.sign("//Charlie", 0, submit(bad));
    for seed in 0..16 {
        match validate(&chain, &bad_xt, gossip(seed)) {
            Err(TransactionError::Refuted(DispatchError::Ponw(
                neuroshard_ponw::Error::ReceiptRejected {
                    reason: RejectReason::BadSignature,
                    ..
                },
            ))) => {}
            other => panic!("seed {seed}: {other:?}"),
        }
    }

    // Good signatures pass the sample whatever the seed, and the call is not run: here
    // it would fail (//Dave, the client, has locked no escrow), so a peer's copy is
    // pooled, included and charged, while this node's own user is told before paying.
    let good_xt = chain.sign("//Charlie", 0, submit(good));
    for seed in 0..16 {
        validate(&chain, &good_xt, gossip(seed)).unwrap();
    }
    assert!(matches!(
        validate(&chain, &good_xt, Validation::DryRun),
        Err(TransactionError::Call(DispatchError::Ponw(
            neuroshard_ponw::Error::ReceiptRejected {
                reason: RejectReason::InsufficientEscrow,
                ..
            }
        )))
    ));
    let charlie = chain.free("//Charlie");
    let fee = chain.runtime.fee_of(&chain.state, &good_xt).unwrap();
    let (block, events, _) = chain.produce(vec![good_xt]);
    assert_eq!(block.extrinsics.len(), 1);
    assert_eq!(chain.free("//Charlie"), charlie - fee);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ExtrinsicFailed { fee: f, .. } if *f == fee)));
}
