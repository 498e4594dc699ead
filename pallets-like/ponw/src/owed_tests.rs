//! Tests of what hiding from a check costs (`crate::owed`): the attack of a worker that
//! fakes its receipts and answers every drawn check with nothing, the debt paid by its
//! next receipts (never its bond while it serves), the bond paying at exit, and a debt
//! beyond the bond that is still worked off.

use crate::evidence_tests::evidence_for;
use crate::owed::owed;
use crate::settlement::{holding, slash_for, DRAW_DELAY};
use crate::spot_check_tests::{checker_of, genesis_with, start_block, validators};
use crate::spot_checks::is_sampled;
use crate::tests::{apply, ctx, key, receipt};
use crate::*;
use neuroshard_primitives::{Event, Hash, Receipt, SpotCheckVerdict};
use neuroshard_support::{BlockContext, StateDb};

/// The tests' sampling rate: 5%, the dev chain's.
const PERMILL: u32 = 50_000;

fn block(number: u64) -> BlockContext {
    BlockContext {
        number,
        randomness: Hash::zero(),
        ..ctx(0, 5)
    }
}

fn free(state: &StateDb, uri: &str) -> Balance {
    balances::account(state, &key(uri).1).unwrap().free
}

/// //Bob's receipt number `seq` (4 positions of layers 10-20).
fn bobs(seq: u32) -> Receipt {
    receipt("//Bob", (10, 20), seq, (4 * seq, 4 * seq + 4), 0)
}

/// The checks' genesis at 5% sampling, with no floor under the fee-scaled slash (so
/// that `slash_for` is `2 x fee / p`, 40 fees).
fn genesis() -> StateDb {
    let mut state = genesis_with(PERMILL);
    let mut p = crate::params(&state).unwrap();
    p.spot_check_slash = 1;
    apply(&mut state, |o| {
        PARAMS.put(o, &p);
        Ok(())
    })
    .unwrap();
    state
}

/// A randomness under which none of `receipts` is sampled (the draw of a block).
fn unsampling(receipts: &[Receipt]) -> Hash {
    (0u8..=255)
        .map(Hash::repeat_byte)
        .find(|r| receipts.iter().all(|x| !is_sampled(r, &x.id(), PERMILL)))
        .expect("some randomness samples none")
}

/// Includes `receipts` in block `at`, draws them `DRAW_DELAY` blocks later with
/// `randomness`, and returns the draw block's events.
fn include(state: &mut StateDb, at: u64, receipts: &[Receipt], randomness: Hash) -> Vec<Event> {
    let events = apply(state, |o| submit_receipts(o, &block(at), receipts)).unwrap();
    let rejected = events
        .iter()
        .filter(|e| matches!(e, Event::ReceiptRejected { .. }))
        .count();
    assert_eq!(rejected, 0, "{events:?}");
    start_block(state, at + DRAW_DELAY, randomness)
}

/// //Bob's first receipt, drawn for a check in block 3 + DRAW_DELAY and answered with
/// nothing by both drawn checkers. Returns its fee and the next free `seq`.
fn hide_a_drawn_check(state: &mut StateDb) -> (Balance, u32) {
    let drawn = Hash::repeat_byte(7);
    let seq = (0..)
        .find(|s| is_sampled(&drawn, &bobs(*s).id(), PERMILL))
        .expect("some receipt is sampled");
    let r = bobs(seq);
    include(state, 3, std::slice::from_ref(&r), drawn);
    let fee = holding(state, &key("//Bob").1).unwrap().fees;
    for _ in 0..2 {
        let checker = checker_of(state, &r.id());
        let evidence = evidence_for(state, &r.id(), SpotCheckVerdict::NoAnswer);
        apply(state, |o| {
            let v = SpotCheckVerdict::NoAnswer;
            submit_verdict(o, 6, &validators(), &checker, &r.id(), v, &evidence)
        })
        .unwrap();
    }
    assert_eq!(holding(state, &key("//Bob").1).unwrap(), Default::default());
    (fee, seq + 1)
}

/// Serves `count` more receipts of //Bob (none drawn) from `seq` in block `at`, and
/// settles them; returns what //Bob's free balance gained.
fn serve_and_settle(state: &mut StateDb, at: u64, seq: u32, count: u32) -> Balance {
    let before = free(state, "//Bob");
    let batch: Vec<Receipt> = (seq..seq + count).map(bobs).collect();
    include(state, at, &batch, unsampling(&batch));
    let settle_at = at + crate::params(&*state).unwrap().spot_check_blocks;
    start_block(state, settle_at, Hash::zero());
    free(state, "//Bob") - before
}

/// The attack (finding 3 of docs/ECONOMICS.md): a worker fakes a receipt and, when it
/// is drawn, hands over nothing. Before `crate::owed`, it lost only what it held (here
/// one receipt's fee, a twentieth of `slash_for`) and its next receipts paid in full, so
/// hiding cost `p x fee` per cheated receipt: less than the compute faking saves once
/// compute costs more than 5% of what work pays. Now its next receipts pay what a
/// failed check would have slashed, and its bond is untouched.
#[test]
fn hiding_a_drawn_check_costs_what_failing_it_slashes() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    let bond = worker(&state, &bob).unwrap().unwrap().bond;
    let (fee, seq) = hide_a_drawn_check(&mut state);
    let slash = slash_for(&crate::params(&state).unwrap(), fee);
    assert_eq!(owed(&state, &bob).unwrap(), slash - fee);

    // What the same receipts pay a worker that never hid.
    let count = 60;
    let paid = serve_and_settle(&mut state, 20, seq, count);
    let p = crate::params(&state).unwrap();
    let share = |b: &Receipt| {
        let layer_tokens = u64::from(b.body.tokens()) * u64::from(b.body.layers.len());
        let (fee, burn) = escrow::fee_for(&p, layer_tokens);
        fee - burn
    };
    let full: Balance = (seq..seq + count).map(|s| share(&bobs(s))).sum();
    let lost_income = full - paid;
    // The receipts that paid the debt paid it in whole fees (of which the worker's
    // share is what it lost), so //Bob lost at least the debt's worth of receipts.
    let receipts_to_debt = (slash - fee).div_ceil(fee);
    assert!(
        lost_income >= Balance::from(receipts_to_debt as u64) * share(&bobs(seq)),
        "lost {lost_income} of {full}"
    );
    assert_eq!(owed(&state, &bob).unwrap(), 0);
    assert_eq!(worker(&state, &bob).unwrap().unwrap().bond, bond);
    assert_eq!(crate::spot_checks::slashed(&state, &bob).unwrap(), 0);
    // Once paid, its receipts pay it again.
    let after = serve_and_settle(&mut state, 40, seq + count, 5);
    let expected: Balance = (seq + count..seq + count + 5)
        .map(|s| share(&bobs(s)))
        .sum();
    assert_eq!(after, expected);
}

/// A worker that leaves owing pays the rest from its bond: deregistering and coming
/// back as a new account does not escape what hiding costs.
#[test]
fn a_worker_leaving_with_a_debt_pays_it_from_its_bond() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    let bond = worker(&state, &bob).unwrap().unwrap().bond;
    let (_, _) = hide_a_drawn_check(&mut state);
    let debt = owed(&state, &bob).unwrap();
    assert!(debt > 0);
    let free_before = free(&state, "//Bob");
    let events = apply(&mut state, |o| deregister_worker(o, &bob)).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ForfeitPaid { from_bond: true, amount, owed: 0, .. } if *amount == debt
    )));
    assert_eq!(free(&state, "//Bob"), free_before + bond - debt);
    assert_eq!(owed(&state, &bob).unwrap(), 0);
}

/// A debt larger than the bond does not stop a worker from serving and working it off
/// (the exposure cap counts only what it holds): its receipts are accepted and settle
/// into the debt.
#[test]
fn a_debt_beyond_the_bond_is_worked_off_not_a_lockout() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    let (_, seq) = hide_a_drawn_check(&mut state);
    let bond = worker(&state, &bob).unwrap().unwrap().bond;
    apply(&mut state, |o| {
        crate::owed::OWED.insert(o, &bob, &(2 * bond));
        Ok(())
    })
    .unwrap();
    let gained = serve_and_settle(&mut state, 20, seq, 10);
    assert_eq!(gained, 0, "every settling receipt paid the debt");
    assert!(owed(&state, &bob).unwrap() < 2 * bond);
}
