//! Tests of what wires capacity claims into the chain beside their rules: the
//! `wrong_verdict` slash of an auditor the audit's outcome contradicts (the spot checks'
//! rule, shared), one credit per minute while `report_liveness` still credits probes,
//! the pruning of `LastCapacityClaim`, a leaving worker's bond answering for its
//! undecided claims, and the debt (not slash) of an honest worker that crashed before
//! opening, paid from its next reward.

use super::capacity::*;
use super::capacity_audit::*;
use super::capacity_audit_tests::{
    audit_of, claim, credited, opening, recomputation, Claimed, Play,
};
use super::capacity_tests::{
    call, ctx, garbage_commitment, genesis, run_to_claim_slot, start, validators,
};
use super::tests::{key, prove_minute};
use super::*;
use neuroshard_primitives::{AccountId, Event, SlashReason, UNIT};
use neuroshard_support::StateDb;

/// Staking bond of each of the tests' validators.
const STAKE: Balance = 1_000 * UNIT;

fn always_audited() -> CapacityParams {
    CapacityParams {
        audit_permill: 1_000_000,
        ..CapacityParams::default()
    }
}

/// Stakes [`STAKE`] for each validator, so that a wrong verdict has a bond to slash.
fn stake(state: &mut StateDb, v: &[(AccountId, Balance)]) {
    state
        .commit(|o| {
            for (who, _) in v {
                balances::mint(o, who, STAKE)?;
                balances::bond(o, who, STAKE)?;
            }
            Ok::<(), Error>(())
        })
        .unwrap();
}

/// Runs the audit of `c` to its end: the worker opens its leaves, and the auditor of
/// round `r` recomputes honestly, or (when `lies[r]`) posts made-up commitments if the
/// worker's leaves are true and echoes them if they are not. Returns the events and
/// the auditors in order.
fn audit(
    state: &mut StateDb,
    slot: u64,
    c: &Claimed,
    lies: [bool; MAX_ROUNDS],
) -> (Vec<Event>, Vec<AccountId>) {
    let v = validators();
    let (mut events, mut auditors) = (Vec::new(), Vec::new());
    for s in slot + 1..slot + 100 {
        events.extend(start(state, s, &v));
        let Some(audit) = audit_of(state, c) else {
            if s > slot + 2 {
                return (events, auditors);
            }
            continue;
        };
        let now = ctx(s);
        if audit.opened.is_none() {
            let leaves = opening(state, c);
            call(state, |o| open_capacity(o, &now, &c.who, c.minute, &leaves)).unwrap();
            continue;
        }
        let auditor = audit.drawn.last().unwrap().clone();
        let round = audit.verdicts.len();
        let honest = recomputation(state, c, false);
        let r = match (lies[round], audit.opened.as_ref() == Some(&honest)) {
            (false, _) => honest,
            (true, true) => vec![garbage_commitment(7, 32); honest.len()],
            (true, false) => recomputation(state, c, true),
        };
        let verdict =
            |o: &mut Overlay<'_>| capacity_verdict(o, &now, &auditor, &v, &c.who, c.minute, r);
        events.extend(call(state, verdict).unwrap());
        auditors.push(auditor);
    }
    panic!("the audit never ended");
}

fn wrong_verdict_slashes(events: &[Event], c: &Claimed) -> Vec<(AccountId, Balance)> {
    let id = claim_id(&c.who, c.minute);
    events
        .iter()
        .filter_map(|e| match e {
            Event::Slashed {
                who,
                amount,
                reason: SlashReason::WrongVerdict { receipt },
            } if *receipt == id => Some((who.clone(), *amount)),
            _ => None,
        })
        .collect()
}

/// An auditor framing an honest worker (a made-up recomputation) is overruled by the
/// next two and loses `spot_check_slash` of its stake; the honest auditors and the
/// worker lose nothing and the claim is credited.
#[test]
fn an_auditor_framing_an_honest_worker_is_overruled_and_loses_stake() {
    let charlie = key("//Charlie").1;
    let mut state = genesis(always_audited());
    let v = validators();
    stake(&mut state, &v);
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let c = claim(&mut state, slot, &charlie, Play::Honest, 200);
    let (events, auditors) = audit(&mut state, slot, &c, [true, false, false]);
    assert_eq!(auditors.len(), 3);
    assert_eq!(credited(&events, &charlie), Some(1_000_000));
    let slash = crate::params(&state).unwrap().spot_check_slash;
    assert_eq!(
        wrong_verdict_slashes(&events, &c),
        vec![(auditors[0].clone(), slash)]
    );
    for (who, _) in &v {
        let bonded = balances::account(&state, who).unwrap().bonded;
        let want = if *who == auditors[0] {
            STAKE - slash
        } else {
            STAKE
        };
        assert_eq!(bonded, want);
    }
    assert_eq!(spot_checks::slashed(&state, &charlie).unwrap(), 0);
}

/// A colluder's `Match` on made-up leaves, between two honest auditors whose
/// recomputations agree, is overruled: the claim is refuted (the worker slashed) and
/// the colluder loses stake.
#[test]
fn a_colluders_match_overruled_by_two_agreeing_recomputations_loses_stake() {
    let bob = key("//Bob").1;
    let mut state = genesis(always_audited());
    let v = validators();
    stake(&mut state, &v);
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let c = claim(&mut state, slot, &bob, Play::Machineless, 100);
    let (events, auditors) = audit(&mut state, slot, &c, [false, true, false]);
    assert_eq!(credited(&events, &bob), None);
    let slash = crate::params(&state).unwrap().spot_check_slash;
    assert_eq!(
        wrong_verdict_slashes(&events, &c),
        vec![(auditors[1].clone(), slash)]
    );
    assert_eq!(
        spot_checks::slashed(&state, &bob).unwrap(),
        CapacityParams::default().slash,
        "signed commitments refuted: a real slash"
    );
}

/// While `report_liveness` still credits probes, a minute is credited once: a worker
/// whose probe credited the minute cannot claim it, and a probe does not credit a
/// minute its worker claimed.
#[test]
fn a_minute_is_credited_once_by_either_the_probe_or_the_claim() {
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    let mut state = genesis(CapacityParams {
        audit_permill: 0,
        ..CapacityParams::default()
    });
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    prove_minute(&mut state, &ctx(slot), &bob);
    let refused = CapacityClaim {
        minute: 5,
        jobs: 100,
        root: Hash::zero(),
    };
    let now = ctx(slot);
    assert_eq!(
        call(&mut state, |o| claim_capacity(o, &now, &bob, &refused)),
        Err(CapacityError::AlreadyClaimed(5))
    );
    claim(&mut state, slot, &charlie, Play::Honest, 200);
    prove_minute(&mut state, &ctx(slot), &charlie);
    let mut events = Vec::new();
    for s in slot + 1..slot + 3 {
        events.extend(start(&mut state, s, &v));
    }
    assert_eq!(credited(&events, &charlie), Some(1_000_000), "by the claim");
    let tally = |who: &AccountId| {
        rewards::tallies(&state)
            .unwrap()
            .into_iter()
            .find(|(w, _)| w == who)
            .map(|(_, t)| t.uptime_minutes)
    };
    assert_eq!(tally(&charlie), Some(1), "not again by the probe");
    assert_eq!(tally(&bob), Some(1));
}

/// `LastCapacityClaim` keeps no record of an account that left before the minute's
/// beacon; a registered worker's record stays.
#[test]
fn the_last_claims_of_departed_workers_are_pruned_at_the_next_beacon() {
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    let mut state = genesis(CapacityParams {
        audit_permill: 0,
        ..CapacityParams::default()
    });
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    claim(&mut state, slot, &bob, Play::Honest, 100);
    claim(&mut state, slot, &charlie, Play::Honest, 100);
    for s in slot + 1..slot + 3 {
        start(&mut state, s, &v);
    }
    state
        .commit(|o| workers::deregister_worker(o, &bob))
        .unwrap();
    assert_eq!(LAST_CLAIM.get(&state, &bob).unwrap(), Some(5));
    run_to_claim_slot(&mut state, 6, &v);
    assert_eq!(LAST_CLAIM.get(&state, &bob).unwrap(), None);
    assert_eq!(LAST_CLAIM.get(&state, &charlie).unwrap(), Some(5));
}

/// A worker that deregisters with a claim undecided keeps its bond at stake (retired)
/// until the audit ends: the refuted claim's slash is taken from it and the rest is
/// released.
#[test]
fn a_worker_leaving_with_a_claim_undecided_answers_for_it_with_its_bond() {
    let bob = key("//Bob").1;
    let mut state = genesis(always_audited());
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let c = claim(&mut state, slot, &bob, Play::Machineless, 100);
    let bond = workers::worker(&state, &bob).unwrap().unwrap().bond;
    state
        .commit(|o| workers::deregister_worker(o, &bob))
        .unwrap();
    assert_eq!(workers::retired_bond(&state, &bob).unwrap(), bond);
    assert!(capacity::has_pending(&state, &bob).unwrap());
    let (events, _) = audit(&mut state, slot, &c, [false; MAX_ROUNDS]);
    assert_eq!(credited(&events, &bob), None);
    let slash = CapacityParams::default().slash;
    assert_eq!(spot_checks::slashed(&state, &bob).unwrap(), slash);
    assert_eq!(workers::retired_bond(&state, &bob).unwrap(), 0);
    assert!(!capacity::has_pending(&state, &bob).unwrap());
    assert_eq!(balances::account(&state, &bob).unwrap().reserved, 0);
}

/// An honest worker that crashes between its claim and the drawn opening (issue 20's
/// rule: honest faults never cost bond while it serves): the claim leaves it owing the
/// capacity slash, its next epoch reward pays the debt first, and its bond is untouched.
#[test]
fn an_honest_worker_that_crashes_before_opening_pays_from_income_not_bond() {
    let charlie = key("//Charlie").1;
    let mut state = genesis(always_audited());
    let v = validators();
    let bond = workers::worker(&state, &charlie).unwrap().unwrap().bond;
    let slot = run_to_claim_slot(&mut state, 5, &v);
    claim(&mut state, slot, &charlie, Play::Honest, 100);
    let p = crate::params(&state).unwrap();
    let last = slot + 2 + p.capacity.open_blocks;
    for s in slot + 1..=last {
        start(&mut state, s, &v);
    }
    assert_eq!(owed::owed(&state, &charlie).unwrap(), p.capacity.slash);
    // It comes back and serves: twelve unaudited minutes at full capacity.
    state
        .commit(|o| {
            let mut q = crate::params(o)?;
            q.capacity.audit_permill = 0;
            PARAMS.put(o, &q);
            Ok::<(), Error>(())
        })
        .unwrap();
    for minute in 6..18 {
        let slot = run_to_claim_slot(&mut state, minute, &v);
        claim(&mut state, slot, &charlie, Play::Honest, 200);
        for s in slot + 1..slot + 3 {
            start(&mut state, s, &v);
        }
    }
    let payout = neuroshard_support::BlockContext {
        epoch: 1,
        ..ctx(18 * super::capacity_tests::SLOTS_PER_MINUTE)
    };
    let events = state
        .commit(|o| rewards::on_epoch_start(o, &payout))
        .unwrap();
    let minted = events.iter().find_map(|e| match e {
        Event::RewardPaid {
            account, reward, ..
        } if *account == charlie => Some(*reward),
        _ => None,
    });
    assert_eq!(minted, Some(12 * p.uptime_reward - p.capacity.slash));
    assert_eq!(owed::owed(&state, &charlie).unwrap(), 0);
    assert_eq!(
        workers::worker(&state, &charlie).unwrap().unwrap().bond,
        bond
    );
    assert_eq!(spot_checks::slashed(&state, &charlie).unwrap(), 0);
}
