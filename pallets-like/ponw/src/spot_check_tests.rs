//! Tests of settlement and spot checks, most of them attacks: the draw (from a later
//! block's randomness), held earnings, checkers drawn on chain, the quorum (one
//! validator's word never decides against a worker, and a contradicted validator pays),
//! forfeiture, slashes that scale with the fee, retired bonds, the exposure cap, and
//! `NoAnswer` that never touches a bond.

use crate::settlement::{self, holding, slash_for, DRAW_DELAY};
use crate::spot_checks::{self, all_pending, convicted, draw_checker, is_sampled, slashed};
use crate::tests::{add_bond, apply, ctx, genesis, key, params, receipt};
use crate::*;
use neuroshard_primitives::{AccountId, Event, Hash, Receipt, SlashReason, SpotCheckVerdict};
use neuroshard_support::{BlockContext, StateDb};

use SpotCheckVerdict::{Match, Mismatch, NoAnswer};

/// Validator stake of the tests' validators.
const STAKE: Balance = 1_000 * neuroshard_primitives::UNIT;

/// The validators of these tests: //Alice, //Ferdie and //Eve, each with [`STAKE`] bonded.
pub(crate) fn validators() -> Vec<(AccountId, Balance)> {
    ["//Alice", "//Ferdie", "//Eve"]
        .iter()
        .map(|u| (key(u).1, STAKE))
        .collect()
}

/// Genesis with every receipt sampled (or `permill`), and the validators staked.
pub(crate) fn genesis_with(permill: u32) -> StateDb {
    let mut state = genesis();
    let mut p = params();
    p.spot_check_permill = permill;
    apply(&mut state, |o| {
        PARAMS.put(o, &p);
        for (v, _) in validators() {
            balances::mint(o, &v, STAKE)?;
            balances::bond(o, &v, STAKE)?;
        }
        Ok(())
    })
    .unwrap();
    state
}

fn block(number: u64, randomness: Hash) -> BlockContext {
    BlockContext {
        number,
        randomness,
        ..ctx(0, 5)
    }
}

/// Runs the start of block `number` (with `randomness`), as the runtime does.
pub(crate) fn start_block(state: &mut StateDb, number: u64, randomness: Hash) -> Vec<Event> {
    let events = apply(state, |o| {
        on_initialize(o, &block(number, randomness), &validators(), 2_000)
    })
    .unwrap();
    assert_index_agrees(state);
    events
}

/// The per-worker index of pending checks lists exactly what a scan of every check
/// finds (checked after every block start and verdict of these tests).
fn assert_index_agrees(state: &StateDb) {
    let all = all_pending(state).unwrap();
    let mut workers: Vec<AccountId> = all.iter().map(|(_, c)| c.body.worker.clone()).collect();
    workers.push(key("//Bob").1);
    workers.push(key("//Charlie").1);
    for w in workers {
        let mut scanned: Vec<Hash> = all
            .iter()
            .filter(|(_, c)| c.body.worker == w)
            .map(|(id, _)| *id)
            .collect();
        let mut indexed: Vec<Hash> = spot_checks::pending_of(state, &w)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        scanned.sort();
        indexed.sort();
        assert_eq!(indexed, scanned);
        assert_eq!(
            spot_checks::has_pending(state, &w).unwrap(),
            !scanned.is_empty()
        );
    }
}

/// Submits `receipts` in block 3 and starts the draw block.
pub(crate) fn include_and_draw(state: &mut StateDb, receipts: &[Receipt]) -> Vec<Event> {
    apply(state, |o| {
        submit_receipts(o, &block(3, Hash::zero()), receipts)
    })
    .unwrap();
    start_block(state, 3 + DRAW_DELAY, Hash::repeat_byte(7))
}

/// `by`'s verdict `v` on the check of `id`, in block 9 (before the window closes).
fn verdict(state: &mut StateDb, by: &AccountId, id: &Hash, v: SpotCheckVerdict) -> Vec<Event> {
    verdict_at(state, 9, by, id, v)
}

fn verdict_at(
    state: &mut StateDb,
    now: u64,
    by: &AccountId,
    id: &Hash,
    v: SpotCheckVerdict,
) -> Vec<Event> {
    let evidence = crate::evidence_tests::evidence_for(state, id, v);
    let events = apply(state, |o| {
        submit_verdict(o, now, &validators(), by, id, v, &evidence)
    })
    .unwrap();
    assert_index_agrees(state);
    events
}

pub(crate) fn checker_of(state: &StateDb, id: &Hash) -> AccountId {
    spot_checks::pending(state, id).unwrap().unwrap().checker
}

fn tally(state: &StateDb, uri: &str) -> WorkTally {
    TALLIES.get(state, &key(uri).1).unwrap().unwrap_or_default()
}

fn account(state: &StateDb, uri: &str) -> balances::AccountData {
    balances::account(state, &key(uri).1).unwrap()
}

fn fee_of(r: &Receipt) -> (Balance, Balance) {
    let layer_tokens = u64::from(r.body.tokens()) * u64::from(r.body.layers.len());
    escrow::fee_for(&params(), layer_tokens)
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
    let other = ids
        .iter()
        .filter(|id| is_sampled(&randomness, id, 100_000) != is_sampled(&Hash::zero(), id, 100_000))
        .count();
    assert!(other > 1_000);
}

#[test]
fn earnings_are_held_until_the_window_closes_then_settled() {
    let mut state = genesis_with(0);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    let (fee, burn) = fee_of(&r);
    let (bob_before, dave_before) = (account(&state, "//Bob"), account(&state, "//Dave"));
    let escrow_before = escrow::escrow(&state, &key("//Dave").1).unwrap().amount;
    include_and_draw(&mut state, std::slice::from_ref(&r));
    // The fee left the escrow (it cannot pay twice) but nobody was paid yet.
    assert_eq!(
        escrow::escrow(&state, &key("//Dave").1).unwrap().amount,
        escrow_before - fee
    );
    assert_eq!(account(&state, "//Dave").reserved, dave_before.reserved);
    assert_eq!(account(&state, "//Bob").free, bob_before.free);
    assert_eq!(tally(&state, "//Bob"), WorkTally::default());
    assert_eq!(
        holding(&state, &key("//Bob").1).unwrap().earnings,
        fee - burn
    );

    let settle_at = 3 + params().spot_check_blocks;
    assert!(start_block(&mut state, settle_at - 1, Hash::zero()).is_empty());
    let events = start_block(&mut state, settle_at, Hash::zero());
    assert!(events.contains(&Event::EarningsSettled {
        worker: key("//Bob").1,
        receipts: 1,
        earned: fee - burn,
        tokens: 32,
    }));
    assert_eq!(account(&state, "//Bob").free, bob_before.free + fee - burn);
    assert_eq!(
        account(&state, "//Dave").reserved,
        dave_before.reserved - fee
    );
    assert_eq!(tally(&state, "//Bob").layer_tokens, 320);
    assert_eq!(
        holding(&state, &key("//Bob").1).unwrap(),
        Default::default()
    );
}

/// Grinding: the worker picks the receipt (and so its id) before it knows the randomness
/// that draws it; whether a receipt is checked, and by whom, depends only on the block
/// [`DRAW_DELAY`] after its inclusion.
#[test]
fn the_draw_and_the_checker_come_from_a_later_blocks_randomness() {
    let receipts: Vec<Receipt> = (0..40)
        .map(|seq| receipt("//Bob", (10, 20), seq, (seq, seq + 1), 0))
        .collect();
    let draws = |randomness: Hash| {
        let mut state = genesis_with(500_000);
        apply(&mut state, |o| {
            submit_receipts(o, &block(3, Hash::repeat_byte(1)), &receipts)
        })
        .unwrap();
        // Nothing is drawn at inclusion.
        assert!(all_pending(&state).unwrap().is_empty());
        start_block(&mut state, 3 + DRAW_DELAY, randomness);
        let mut pending: Vec<(Hash, AccountId)> = all_pending(&state)
            .unwrap()
            .into_iter()
            .map(|(id, c)| (id, c.checker))
            .collect();
        pending.sort();
        pending
    };
    let (a, b) = (draws(Hash::repeat_byte(2)), draws(Hash::repeat_byte(3)));
    assert!(!a.is_empty() && !b.is_empty());
    assert_ne!(a, b, "another draw block, another sample");
    for (id, checker) in &a {
        assert!(is_sampled(&Hash::repeat_byte(2), id, 500_000));
        // The checker is neither the worker nor the client.
        assert!(*checker != key("//Bob").1 && *checker != key("//Dave").1);
    }
}

/// Omission: an author that leaves receipts out of its block (hoping to skip a draw)
/// only moves their draw to the block [`DRAW_DELAY`] after whichever later block
/// includes them, decided by that block's randomness, which the omitting author did not
/// know either. Nothing is drawn for receipts not yet included, and a late receipt is
/// drawn exactly as an early one would be under the same randomness.
#[test]
fn an_omitted_receipt_is_drawn_when_a_later_block_includes_it() {
    let receipts: Vec<Receipt> = (0..40)
        .map(|seq| receipt("//Bob", (10, 20), seq, (seq, seq + 1), 0))
        .collect();
    let randomness = Hash::repeat_byte(5);
    let drawn_after_inclusion_at = |included: u64| {
        let mut state = genesis_with(500_000);
        // The blocks before the inclusion (the omitting author's among them) draw nothing.
        for n in 3..included + DRAW_DELAY {
            start_block(&mut state, n, Hash::repeat_byte(n as u8));
            if n == included {
                apply(&mut state, |o| {
                    submit_receipts(o, &block(included, Hash::zero()), &receipts)
                })
                .unwrap();
            }
            assert!(all_pending(&state).unwrap().is_empty(), "drawn at {n}");
        }
        start_block(&mut state, included + DRAW_DELAY, randomness);
        let mut ids: Vec<Hash> = all_pending(&state)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    };
    let (on_time, late) = (drawn_after_inclusion_at(3), drawn_after_inclusion_at(8));
    assert!(!on_time.is_empty());
    assert_eq!(on_time, late, "the same randomness draws the same receipts");
    assert!(late.iter().all(|id| is_sampled(&randomness, id, 500_000)));
}

#[test]
fn a_match_from_the_drawn_checker_decides_and_only_it_may_answer() {
    let mut state = genesis_with(1_000_000);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    let events = include_and_draw(&mut state, std::slice::from_ref(&r));
    let checker = checker_of(&state, &r.id());
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckRequested { id, checker: c, .. } if *id == r.id() && *c == checker
    )));
    // Another validator's verdict is refused.
    let (other, _) = validators()
        .into_iter()
        .find(|(v, _)| *v != checker)
        .unwrap();
    let refused = apply(&mut state, |o| {
        let evidence = crate::evidence_tests::evidence_for(o, &r.id(), Mismatch);
        submit_verdict(o, 9, &validators(), &other, &r.id(), Mismatch, &evidence)
    });
    assert_eq!(refused, Err(Error::NotTheChecker));
    let events = verdict(&mut state, &checker, &r.id(), Match);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SpotCheckPassed { .. })));
    // It settles at the end of its window like any other.
    let events = start_block(&mut state, 3 + params().spot_check_blocks, Hash::zero());
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::EarningsSettled { .. })));
    assert_eq!(tally(&state, "//Bob").layer_tokens, 320);
}

/// A validator colluding with the client (free inference out of an honest worker's
/// bond) says `Mismatch`: the check goes to independently drawn validators, whose
/// majority contradicts it; the worker keeps its bond and earnings and the false accuser
/// loses stake.
#[test]
fn one_validators_mismatch_does_not_slash_and_a_contradicted_accuser_pays() {
    let mut state = genesis_with(1_000_000);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    include_and_draw(&mut state, std::slice::from_ref(&r));
    let liar = checker_of(&state, &r.id());
    let bob_bond = worker(&state, &key("//Bob").1).unwrap().unwrap().bond;
    let events = verdict(&mut state, &liar, &r.id(), Mismatch);
    assert!(!events.iter().any(|e| matches!(e, Event::Slashed { .. })));
    let second = checker_of(&state, &r.id());
    assert_ne!(second, liar);
    verdict(&mut state, &second, &r.id(), Match);
    let third = checker_of(&state, &r.id());
    assert!(third != liar && third != second);
    let events = verdict(&mut state, &third, &r.id(), Match);
    assert!(events.contains(&Event::Slashed {
        who: liar.clone(),
        amount: params().spot_check_slash,
        reason: SlashReason::WrongVerdict { receipt: r.id() },
    }));
    assert_eq!(
        balances::account(&state, &liar).unwrap().bonded,
        STAKE - params().spot_check_slash
    );
    assert_eq!(
        worker(&state, &key("//Bob").1).unwrap().unwrap().bond,
        bob_bond
    );
    assert_eq!(slashed(&state, &key("//Bob").1).unwrap(), 0);
    start_block(&mut state, 3 + params().spot_check_blocks, Hash::zero());
    assert_eq!(tally(&state, "//Bob").layer_tokens, 320);
}

/// Wrong work confirmed by two checkers: everything the worker holds is forfeited to the
/// clients, the slash scales with the fee (`2 x fee / p`), the conviction is recorded,
/// and a worker deregistered by the slash still answers with its retired bond for its
/// other checks.
#[test]
fn confirmed_wrong_work_forfeits_everything_and_the_slash_scales_with_the_fee() {
    let mut state = genesis_with(1_000_000);
    // Bob needs more bond to hold a big receipt, Dave more escrow to pay for it.
    let extra = 900 * neuroshard_primitives::UNIT;
    add_bond(&mut state, "//Bob", extra);
    apply(&mut state, |o| {
        balances::mint(o, &key("//Dave").1, 10_000 * neuroshard_primitives::UNIT)?;
        escrow::deposit(o, &key("//Dave").1, 5_000 * neuroshard_primitives::UNIT)
    })
    .unwrap();
    let big = receipt("//Bob", (10, 20), 0, (0, 3_000), 0);
    let small = receipt("//Bob", (10, 20), 1, (3_000, 3_010), 0);
    let (big_fee, _) = fee_of(&big);
    let (small_fee, _) = fee_of(&small);
    let escrow_before = escrow::escrow(&state, &key("//Dave").1).unwrap().amount;
    include_and_draw(&mut state, &[big.clone(), small.clone()]);
    let first = checker_of(&state, &big.id());
    verdict(&mut state, &first, &big.id(), Mismatch);
    let second = checker_of(&state, &big.id());
    let events = verdict(&mut state, &second, &big.id(), Mismatch);

    let expected = slash_for(&params_now(&state), big_fee);
    assert!(
        expected > params().spot_check_slash,
        "the fee-scaled slash applies"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckFailed { verdict: Mismatch, slashed, refunded, .. }
            if *slashed == expected && *refunded == big_fee + small_fee
    )));
    // Both receipts' fees are back in the client's escrow; nothing credited, nothing held.
    assert_eq!(
        escrow::escrow(&state, &key("//Dave").1).unwrap().amount,
        escrow_before
    );
    assert_eq!(
        holding(&state, &key("//Bob").1).unwrap(),
        Default::default()
    );
    assert_eq!(convicted(&state, &key("//Bob").1).unwrap(), Some(9));
    // 1000 - 400 NSHD left, above the 100 NSHD minimum: still registered.
    let left = params().worker_bond + extra - expected;
    assert_eq!(worker(&state, &key("//Bob").1).unwrap().unwrap().bond, left);

    // The small receipt's check still runs and, confirmed wrong, slashes again.
    let c = checker_of(&state, &small.id());
    verdict(&mut state, &c, &small.id(), Mismatch);
    let c = checker_of(&state, &small.id());
    verdict(&mut state, &c, &small.id(), Mismatch);
    let min = params().spot_check_slash;
    assert_eq!(
        slashed(&state, &key("//Bob").1).unwrap(),
        expected + min.max(slash_for(&params_now(&state), small_fee))
    );
    // No minting for either, ever.
    start_block(&mut state, 3 + params().spot_check_blocks, Hash::zero());
    assert_eq!(tally(&state, "//Bob"), WorkTally::default());
}

fn params_now(state: &StateDb) -> Params {
    crate::params(state).unwrap()
}

/// A worker deregistered by a slash keeps answering with what is left of its bond until
/// its last check is decided; only then is the rest released.
#[test]
fn a_deregistered_worker_still_answers_for_its_pending_checks() {
    let mut state = genesis_with(1_000_000);
    let a = receipt("//Bob", (10, 20), 0, (0, 8), 0);
    let b = receipt("//Bob", (10, 20), 1, (8, 16), 0);
    include_and_draw(&mut state, &[a.clone(), b.clone()]);
    for _ in 0..2 {
        let c = checker_of(&state, &a.id());
        verdict(&mut state, &c, &a.id(), Mismatch);
    }
    // 100 - 50 < 100: deregistered, 50 retired (still reserved).
    let bob = key("//Bob").1;
    assert!(worker(&state, &bob).unwrap().is_none());
    assert_eq!(
        retired_bond(&state, &bob).unwrap(),
        50 * neuroshard_primitives::UNIT
    );
    assert_eq!(
        account(&state, "//Bob").reserved,
        50 * neuroshard_primitives::UNIT
    );
    for _ in 0..2 {
        let c = checker_of(&state, &b.id());
        verdict(&mut state, &c, &b.id(), Mismatch);
    }
    assert_eq!(
        slashed(&state, &bob).unwrap(),
        100 * neuroshard_primitives::UNIT
    );
    assert_eq!(retired_bond(&state, &bob).unwrap(), 0);
    assert_eq!(account(&state, "//Bob").reserved, 0);
}

/// An honest worker that was offline or restarted cannot hand over its material: two
/// checkers agree on `NoAnswer`. It loses the earnings it held, never its bond, and
/// stays registered and unconvicted.
#[test]
fn no_answer_forfeits_held_earnings_but_never_the_bond() {
    let mut state = genesis_with(1_000_000);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    include_and_draw(&mut state, std::slice::from_ref(&r));
    let bob = key("//Bob").1;
    let bond = worker(&state, &bob).unwrap().unwrap().bond;
    for _ in 0..2 {
        let c = checker_of(&state, &r.id());
        verdict(&mut state, &c, &r.id(), NoAnswer);
    }
    assert_eq!(worker(&state, &bob).unwrap().unwrap().bond, bond);
    assert_eq!(slashed(&state, &bob).unwrap(), 0);
    assert_eq!(convicted(&state, &bob).unwrap(), None);
    assert_eq!(holding(&state, &bob).unwrap(), Default::default());
    assert_eq!(
        escrow::escrow(&state, &key("//Dave").1).unwrap().amount,
        100 * neuroshard_primitives::UNIT
    );
}

/// A checker that never answers is replaced by another drawn validator: the check is
/// never credited by default.
#[test]
fn an_overdue_check_is_reassigned_not_credited() {
    let mut state = genesis_with(1_000_000);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    include_and_draw(&mut state, std::slice::from_ref(&r));
    let first = checker_of(&state, &r.id());
    let deadline = spot_checks::pending(&state, &r.id())
        .unwrap()
        .unwrap()
        .deadline;
    let events = start_block(&mut state, deadline, Hash::zero());
    let second = checker_of(&state, &r.id());
    assert_ne!(first, second);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckReassigned { id, verdict: None, .. } if *id == r.id()
    )));
    // Its window closed meanwhile, but it does not settle while the check is open.
    assert_eq!(tally(&state, "//Bob"), WorkTally::default());
    verdict_at(&mut state, deadline + 1, &second, &r.id(), Match);
    assert_eq!(tally(&state, "//Bob").layer_tokens, 320);
}

/// A worker cannot hold more unsettled work than its bond answers for.
#[test]
fn unsettled_work_is_capped_by_the_bond() {
    let mut state = genesis_with(0);
    let bond = params().worker_bond;
    // Receipts of 660 positions through 10 layers: fee 44 NSHD each; 2 x fees must
    // stay within the 100 NSHD bond, so the first fits and the second does not.
    let a = receipt("//Bob", (10, 20), 0, (0, 660), 0);
    let b = receipt("//Bob", (10, 20), 1, (660, 1_320), 0);
    apply(&mut state, |o| {
        balances::mint(o, &key("//Dave").1, 1_000 * neuroshard_primitives::UNIT)?;
        escrow::deposit(o, &key("//Dave").1, 1_000 * neuroshard_primitives::UNIT)
    })
    .unwrap();
    let events = apply(&mut state, |o| {
        submit_receipts(o, &block(3, Hash::zero()), &[a.clone(), b.clone()])
    })
    .unwrap();
    assert!(settlement::exposure_of(fee_of(&a).0) <= bond);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ReceiptAccepted { id, .. } if *id == a.id())));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ReceiptRejected { id, reason: neuroshard_primitives::RejectReason::ExposureExceeded, .. }
            if *id == b.id()
    )));
}

#[test]
fn deregistering_with_unsettled_work_retires_the_bond_until_it_settles() {
    let mut state = genesis_with(0);
    let bob = key("//Bob").1;
    let r = receipt("//Bob", (10, 20), 0, (0, 8), 0);
    include_and_draw(&mut state, std::slice::from_ref(&r));
    apply(&mut state, |o| deregister_worker(o, &bob)).unwrap();
    assert!(worker(&state, &bob).unwrap().is_none());
    assert_eq!(retired_bond(&state, &bob).unwrap(), params().worker_bond);
    start_block(&mut state, 3 + params().spot_check_blocks, Hash::zero());
    assert_eq!(retired_bond(&state, &bob).unwrap(), 0);
    assert_eq!(account(&state, "//Bob").reserved, 0);
}

#[test]
fn checkers_avoid_the_worker_and_client_when_the_set_allows() {
    let r = receipt("//Alice", (10, 20), 0, (0, 8), 0);
    let set: Vec<(AccountId, Balance)> = ["//Alice", "//Dave", "//Eve"]
        .iter()
        .map(|u| (key(u).1, STAKE))
        .collect();
    for i in 0..50u8 {
        let c = draw_checker(&set, &Hash::repeat_byte(i), &r.id(), 0, &r.body, &[]).unwrap();
        assert_eq!(c, key("//Eve").1);
    }
    // A sole validator checks itself; an empty set has no checker.
    let alone = vec![(key("//Alice").1, STAKE)];
    assert_eq!(
        draw_checker(
            &alone,
            &Hash::zero(),
            &r.id(),
            1,
            &r.body,
            &[key("//Alice").1]
        ),
        Some(key("//Alice").1)
    );
    assert_eq!(
        draw_checker(&[], &Hash::zero(), &r.id(), 0, &r.body, &[]),
        None
    );
}

/// Checkers are drawn by bond, so many small validators (a Sybil set) weigh no more
/// than the bond behind them.
#[test]
fn checkers_are_drawn_in_proportion_to_bond() {
    let r = receipt("//Alice", (10, 20), 0, (0, 8), 0);
    let big = key("//Eve").1;
    let mut set = vec![(big.clone(), 9 * STAKE)];
    set.extend(
        ["//Ferdie", "//Charlie", "//Bob"]
            .iter()
            .map(|u| (key(u).1, STAKE / 3)),
    );
    let draws = 3_000u32;
    let big_drawn = (0..draws)
        .filter(|i| {
            let seed = neuroshard_primitives::blake2_256(&i.to_le_bytes());
            draw_checker(&set, &seed, &r.id(), 0, &r.body, &[]) == Some(big.clone())
        })
        .count();
    // Expected 90% of 3,000 (sd ~16): the three small ones share the other 10%.
    assert!((2_600..=2_800).contains(&big_drawn), "{big_drawn}");
}

#[test]
fn the_outcome_needs_agreement_on_failure() {
    use spot_checks::outcome;
    assert_eq!(outcome(&[Match]), Some(Match));
    assert_eq!(outcome(&[Mismatch]), None);
    assert_eq!(outcome(&[NoAnswer]), None);
    assert_eq!(outcome(&[Mismatch, Mismatch]), Some(Mismatch));
    assert_eq!(outcome(&[Mismatch, Match]), None);
    assert_eq!(outcome(&[Mismatch, Match, Match]), Some(Match));
    assert_eq!(outcome(&[Mismatch, Match, Mismatch]), Some(Mismatch));
    assert_eq!(outcome(&[NoAnswer, Mismatch, Match]), Some(Match));
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
