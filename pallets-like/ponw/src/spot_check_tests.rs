//! Tests of spot checks: the draw, held tokens, verdicts (credit, void and slash with the
//! client's refund), expiry, bonds at registration and deregistration.

use crate::spot_checks::{self, all_pending, convicted, is_sampled, slashed};
use crate::tests::{apply, ctx, genesis, key, params, receipt};
use crate::*;
use neuroshard_primitives::{Event, Hash, SlashReason, SpotCheckVerdict};
use neuroshard_support::{BlockContext, StateDb};

/// Genesis with every receipt sampled.
fn checked_genesis() -> StateDb {
    let mut state = genesis();
    let mut p = params();
    p.spot_check_permill = 1_000_000;
    apply(&mut state, |o| {
        PARAMS.put(o, &p);
        Ok(())
    })
    .unwrap();
    state
}

fn block(number: u64) -> BlockContext {
    BlockContext {
        number,
        ..ctx(0, 5)
    }
}

fn tally(state: &StateDb, uri: &str) -> WorkTally {
    TALLIES.get(state, &key(uri).1).unwrap().unwrap_or_default()
}

fn account(state: &StateDb, uri: &str) -> balances::AccountData {
    balances::account(state, &key(uri).1).unwrap()
}

#[test]
fn the_draw_follows_the_rate() {
    let ids: Vec<Hash> = (0..20_000u32)
        .map(|i| neuroshard_primitives::blake2_256(&i.to_le_bytes()))
        .collect();
    let randomness = Hash::repeat_byte(9);
    let drawn = ids
        .iter()
        .filter(|id| is_sampled(&randomness, id, 100_000))
        .count();
    assert!((1_700..2_300).contains(&drawn), "{drawn} of 20000 at 10%");
    assert!(ids.iter().all(|id| !is_sampled(&randomness, id, 0)));
    assert!(ids.iter().all(|id| is_sampled(&randomness, id, 1_000_000)));
    // Other randomness, other sample.
    let other = ids
        .iter()
        .filter(|id| is_sampled(&randomness, id, 100_000) != is_sampled(&Hash::zero(), id, 100_000))
        .count();
    assert!(other > 1_000);
}

#[test]
fn sampled_receipts_are_held_and_credited_on_a_match() {
    let mut state = checked_genesis();
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    let events = apply(&mut state, |o| {
        submit_receipts(o, &block(3), std::slice::from_ref(&r))
    })
    .unwrap();
    // Paid (the fee), but no tokens credited yet.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ReceiptAccepted { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckRequested { id, deadline: 13, .. } if *id == r.id()
    )));
    assert_eq!(tally(&state, "//Bob"), WorkTally::default());
    assert_eq!(all_pending(&state).unwrap().len(), 1);

    // Only a pending receipt takes a verdict.
    let checker = key("//Alice").1;
    let missing = apply(&mut state, |o| {
        submit_verdict(o, 1, &checker, &Hash::zero(), SpotCheckVerdict::Match)
    });
    assert!(matches!(missing, Err(Error::NoPendingCheck(_))));

    let events = apply(&mut state, |o| {
        submit_verdict(o, 1, &checker, &r.id(), SpotCheckVerdict::Match)
    })
    .unwrap();
    assert!(matches!(events[..], [Event::SpotCheckPassed { .. }]));
    assert_eq!(tally(&state, "//Bob").layer_tokens, 320);
    assert!(all_pending(&state).unwrap().is_empty());
    // A second verdict on the same receipt is refused.
    assert!(apply(&mut state, |o| {
        submit_verdict(o, 1, &checker, &r.id(), SpotCheckVerdict::Mismatch)
    })
    .is_err());
}

#[test]
fn a_failed_check_voids_the_receipt_and_slashes_the_bond() {
    let mut state = checked_genesis();
    let r = receipt("//Bob", (10, 20), 0, (0, 30), 0);
    apply(&mut state, |o| {
        submit_receipts(o, &block(3), std::slice::from_ref(&r))
    })
    .unwrap();
    let fee = escrow::fee_for(&params(), 300).0;
    let dave_before = account(&state, "//Dave");
    let issuance_before = balances::total_issuance(&state).unwrap();
    let events = apply(&mut state, |o| {
        submit_verdict(o, 1, &key("//Alice").1, &r.id(), SpotCheckVerdict::Mismatch)
    })
    .unwrap();
    let slash = params().spot_check_slash;
    assert!(events.contains(&Event::Slashed {
        who: key("//Bob").1,
        amount: slash,
        reason: SlashReason::FailedSpotCheck { receipt: r.id() },
    }));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckFailed { slashed, refunded, verdict: SpotCheckVerdict::Mismatch, .. }
            if *slashed == slash && *refunded == fee
    )));
    // The bond fell below the minimum: deregistered, the rest of the bond released.
    assert!(worker(&state, &key("//Bob").1).unwrap().is_none());
    let bob = account(&state, "//Bob");
    assert_eq!(bob.reserved, 0);
    assert_eq!(slashed(&state, &key("//Bob").1).unwrap(), slash);
    // Wrong work is on record: Bob's node will not re-register by itself.
    assert_eq!(convicted(&state, &key("//Bob").1).unwrap(), Some(1));
    // The client got its fee back; the rest of the slash was burned.
    assert_eq!(account(&state, "//Dave").free, dave_before.free + fee);
    assert_eq!(
        balances::total_issuance(&state).unwrap(),
        issuance_before - (slash - fee)
    );
    // Nothing is ever credited for the voided receipt, and the epoch pays Bob nothing.
    assert_eq!(tally(&state, "//Bob"), WorkTally::default());
    let events = apply(&mut state, |o| on_epoch_start(o, &ctx(1, 7))).unwrap();
    assert!(!events.iter().any(|e| matches!(
        e,
        Event::RewardPaid { account, reward, .. } if *account == key("//Bob").1 && *reward > 0
    )));
    // Bob must bond again to serve again.
    let shards = vec![neuroshard_primitives::LayerRange::new(10, 20).unwrap()];
    let again = apply(&mut state, |o| {
        register_worker(o, 4, &key("//Bob").1, model_hash(), shards.clone())
    });
    assert!(again.is_err(), "Bob has less free balance than the bond");
}

fn model_hash() -> Hash {
    params().model.hash
}

#[test]
fn unanswered_checks_are_credited_at_the_deadline() {
    let mut state = checked_genesis();
    let r = receipt("//Charlie", (0, 10), 0, (0, 30), 0);
    apply(&mut state, |o| {
        submit_receipts(o, &block(3), std::slice::from_ref(&r))
    })
    .unwrap();
    assert!(apply(&mut state, |o| spot_checks::expire(o, &block(12)))
        .unwrap()
        .is_empty());
    let events = apply(&mut state, |o| spot_checks::expire(o, &block(13))).unwrap();
    assert_eq!(
        events,
        vec![Event::SpotCheckExpired {
            id: r.id(),
            worker: key("//Charlie").1
        }]
    );
    assert_eq!(tally(&state, "//Charlie").layer_tokens, 300);
    assert!(all_pending(&state).unwrap().is_empty());
}

#[test]
fn bonds_are_reserved_at_registration_and_released_after_checks() {
    let mut state = checked_genesis();
    let bob = key("//Bob").1;
    assert_eq!(account(&state, "//Bob").reserved, params().worker_bond);
    assert_eq!(
        worker(&state, &bob).unwrap().unwrap().bond,
        params().worker_bond
    );
    // Re-announcing does not bond twice.
    let shards = vec![neuroshard_primitives::LayerRange::new(10, 20).unwrap()];
    apply(&mut state, |o| {
        register_worker(o, 2, &bob, model_hash(), shards.clone())
    })
    .unwrap();
    assert_eq!(account(&state, "//Bob").reserved, params().worker_bond);
    // A worker without the bond cannot register.
    let ferdie = key("//Ferdie").1;
    assert!(apply(&mut state, |o| register_worker(
        o,
        2,
        &ferdie,
        model_hash(),
        shards.clone()
    ))
    .is_err());

    let r = receipt("//Bob", (10, 20), 0, (0, 8), 0);
    apply(&mut state, |o| {
        submit_receipts(o, &block(3), std::slice::from_ref(&r))
    })
    .unwrap();
    assert!(matches!(
        apply(&mut state, |o| deregister_worker(o, &bob)),
        Err(Error::ChecksPending)
    ));
    apply(&mut state, |o| {
        submit_verdict(o, 1, &key("//Alice").1, &r.id(), SpotCheckVerdict::Match)
    })
    .unwrap();
    apply(&mut state, |o| deregister_worker(o, &bob)).unwrap();
    assert_eq!(account(&state, "//Bob").reserved, 0);
}

#[test]
fn a_slash_above_the_bond_is_refused_at_genesis() {
    let mut p = params();
    p.spot_check_slash = p.worker_bond + 1;
    let state = StateDb::new();
    let mut o = neuroshard_support::Overlay::new(&state);
    assert!(matches!(
        build_genesis(&mut o, &p, &[]),
        Err(Error::SlashAboveBond)
    ));
}
