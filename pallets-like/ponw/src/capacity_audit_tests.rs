//! Tests of capacity audits: the draw, openings, verdicts, the quorum, the slash, and
//! finding 2's attack (a colluding validator vouching for a machineless worker)
//! replayed against the capacity rules, where it loses money.

use super::capacity::*;
use super::capacity_audit::*;
use super::capacity_tests::{
    call, ctx, garbage_commitment, genesis, run_to_claim_slot, start, tree, true_commitment,
    validators,
};
use super::tests::key;
use super::*;
use neuroshard_primitives::{merkle, AccountId, Event, SlashReason};
use neuroshard_support::StateDb;

/// How a party plays: a worker's leaves (true or made up), an auditor's recomputation
/// (true, or echoing the worker's leaves for its partner).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Play {
    Honest,
    Machineless,
}

/// A worker's claim of `jobs` jobs in minute `minute` and the leaves behind it.
pub(crate) struct Claimed {
    pub(crate) who: AccountId,
    pub(crate) minute: u64,
    pub(crate) leaves: Vec<Vec<u8>>,
}

pub(crate) fn claim(
    state: &mut StateDb,
    slot: u64,
    who: &AccountId,
    play: Play,
    jobs: u32,
) -> Claimed {
    let minute = ctx(slot).minute;
    let beacon = BEACON.get(&*state).unwrap().unwrap();
    let seed = job_input_seed(&beacon.value, who);
    let positions = capacity_params(&*state).unwrap().positions;
    let leaves: Vec<Vec<u8>> = (0..jobs)
        .map(|j| match play {
            Play::Honest => true_commitment(&seed, j, positions),
            Play::Machineless => garbage_commitment(j, positions),
        })
        .collect();
    let root = merkle::root_of_levels(&tree(&leaves));
    let c = ctx(slot);
    let cl = CapacityClaim { minute, jobs, root };
    call(state, |o| claim_capacity(o, &c, who, &cl)).unwrap();
    Claimed {
        who: who.clone(),
        minute,
        leaves,
    }
}

/// The worker's opening of its drawn jobs.
pub(crate) fn opening(state: &StateDb, c: &Claimed) -> Vec<(Vec<u8>, Vec<Option<Hash>>)> {
    let audit = AUDITS
        .get(state, &claim_id(&c.who, c.minute))
        .unwrap()
        .unwrap();
    let levels = tree(&c.leaves);
    audit
        .indices
        .iter()
        .map(|i| {
            (
                c.leaves[*i as usize].clone(),
                merkle::proof(&levels, *i as usize),
            )
        })
        .collect()
}

/// An auditor's recomputation of the opened jobs: the true commitments, or (a colluder
/// auditing its partner) the worker's own leaves.
pub(crate) fn recomputation(state: &StateDb, c: &Claimed, echo: bool) -> Vec<Vec<u8>> {
    let audit = AUDITS
        .get(state, &claim_id(&c.who, c.minute))
        .unwrap()
        .unwrap();
    if echo {
        return audit.opened.unwrap();
    }
    let claim = CLAIMS
        .get(state, &claim_id(&c.who, c.minute))
        .unwrap()
        .unwrap();
    let positions = capacity_params(state).unwrap().positions;
    audit
        .indices
        .iter()
        .map(|i| true_commitment(&claim.input_seed, *i, positions))
        .collect()
}

pub(crate) fn audit_of(state: &StateDb, c: &Claimed) -> Option<Audit> {
    AUDITS.get(state, &claim_id(&c.who, c.minute)).unwrap()
}

/// Plays one block: each claim's worker opens when asked, each current auditor posts
/// (echoing the worker's leaves if it is `colluder`). Returns the block's events.
fn play(
    state: &mut StateDb,
    slot: u64,
    claims: &[&Claimed],
    colluder: Option<&AccountId>,
) -> Vec<Event> {
    let v = validators();
    let mut events = start(state, slot, &v);
    let now = ctx(slot);
    for c in claims {
        let Some(audit) = audit_of(state, c) else {
            continue;
        };
        if audit.opened.is_none() {
            let leaves = opening(state, c);
            events.extend(
                call(state, |o| open_capacity(o, &now, &c.who, c.minute, &leaves)).unwrap(),
            );
            continue;
        }
        let auditor = audit.drawn.last().unwrap().clone();
        let r = recomputation(state, c, colluder == Some(&auditor));
        let verdict =
            |o: &mut Overlay<'_>| capacity_verdict(o, &now, &auditor, &v, &c.who, c.minute, r);
        events.extend(call(state, verdict).unwrap());
    }
    events
}

pub(crate) fn credited(events: &[Event], who: &AccountId) -> Option<u32> {
    events.iter().find_map(|e| match e {
        Event::UptimeCredited {
            worker,
            credit_permill,
            ..
        } if worker == who => Some(*credit_permill),
        _ => None,
    })
}

fn slashed(events: &[Event], who: &AccountId) -> bool {
    events.iter().any(|e| {
        matches!(e, Event::Slashed { who: w, reason: SlashReason::FalseCapacityClaim { .. }, .. } if w == who)
    })
}

fn owes(events: &[Event], who: &AccountId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::ForfeitOwed { worker, .. } if worker == who))
}

/// Runs blocks after `slot` until every claim is settled; returns each one's (credit,
/// slashed) in order.
fn settle(
    state: &mut StateDb,
    mut slot: u64,
    claims: &[&Claimed],
    colluder: Option<&AccountId>,
) -> Vec<(u32, bool)> {
    let mut results: Vec<Option<(u32, bool)>> = vec![None; claims.len()];
    while results.iter().any(Option::is_none) {
        slot += 1;
        let events = play(state, slot, claims, colluder);
        for (c, r) in claims.iter().zip(results.iter_mut()) {
            if let Some(credit) = credited(&events, &c.who) {
                *r = Some((credit, false));
            } else if slashed(&events, &c.who) {
                *r = Some((0, true));
            }
        }
        assert!(slot < 100_000, "a claim never settled");
    }
    results.into_iter().flatten().collect()
}

fn params_with(audit_permill: u32) -> CapacityParams {
    CapacityParams {
        audit_permill,
        ..CapacityParams::default()
    }
}

#[test]
fn an_unaudited_claim_is_credited_at_its_draw_and_an_audited_one_after_a_match() {
    let bob = key("//Bob").1;
    let mut state = genesis(params_with(0));
    let slot = run_to_claim_slot(&mut state, 5, &validators());
    let c = claim(&mut state, slot, &bob, Play::Honest, 81);
    assert_eq!(
        credited(&start(&mut state, slot + 1, &validators()), &bob),
        None
    );
    let events = start(&mut state, slot + 2, &validators());
    assert_eq!(
        credited(&events, &bob),
        Some(498_461),
        "drawn 2 blocks after inclusion"
    );
    assert_eq!(CLAIMS.get(&state, &claim_id(&bob, 5)).unwrap(), None);
    drop(c);
    let mut state = genesis(params_with(1_000_000));
    let slot = run_to_claim_slot(&mut state, 5, &validators());
    let c = claim(&mut state, slot, &bob, Play::Honest, 200);
    start(&mut state, slot + 1, &validators());
    assert_eq!(
        credited(&start(&mut state, slot + 2, &validators()), &bob),
        None
    );
    let audit = audit_of(&state, &c).unwrap();
    assert_eq!(audit.indices.len(), 10, "5% of 200 jobs");
    assert!(audit.drawn[0] != bob);
    assert_eq!(
        settle(&mut state, slot + 2, &[&c], None),
        vec![(1_000_000, false)]
    );
    assert_eq!(spot_checks::slashed(&state, &bob).unwrap(), 0);
}

#[test]
fn hostile_openings_and_verdicts_are_refused() {
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    let mut state = genesis(params_with(1_000_000));
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let c = claim(&mut state, slot, &bob, Play::Honest, 40);
    for s in slot + 1..=slot + 2 {
        start(&mut state, s, &v);
    }
    let now = ctx(slot + 3);
    let good = opening(&state, &c);
    let auditor = audit_of(&state, &c).unwrap().drawn[0].clone();
    let early = call(&mut state, |o| {
        capacity_verdict(o, &now, &auditor, &v, &bob, 5, vec![])
    });
    assert_eq!(
        early,
        Err(CapacityError::NoAudit),
        "nothing to judge before the opening"
    );
    let mut wrong_leaf = good.clone();
    wrong_leaf[0].0 = garbage_commitment(0, 32);
    let mut long_path = good.clone();
    long_path[0].1 = vec![None; MAX_PATH + 1];
    let mut huge = good.clone();
    huge[0].0 = vec![0; MAX_LEAF_BYTES + 1];
    let before = state.root();
    for (who, leaves, want) in [
        (&bob, good[1..].to_vec(), CapacityError::BadOpening),
        (&bob, wrong_leaf, CapacityError::BadOpening),
        (&bob, long_path, CapacityError::BadOpening),
        (&bob, huge, CapacityError::BadOpening),
        (&charlie, good.clone(), CapacityError::NoAudit),
    ] {
        assert_eq!(
            call(&mut state, |o| open_capacity(o, &now, who, 5, &leaves)),
            Err(want)
        );
    }
    assert_eq!(state.root(), before, "refused openings change nothing");
    call(&mut state, |o| open_capacity(o, &now, &bob, 5, &good)).unwrap();
    assert_eq!(
        call(&mut state, |o| open_capacity(o, &now, &bob, 5, &good)),
        Err(CapacityError::NoAudit),
        "opened once"
    );
    let right = recomputation(&state, &c, false);
    let other = v
        .iter()
        .map(|(a, _)| a.clone())
        .find(|a| *a != auditor)
        .unwrap();
    let before = state.root();
    let refused = [
        (&other, right.clone(), CapacityError::NotTheAuditor),
        (&auditor, right[1..].to_vec(), CapacityError::BadVerdict),
        (
            &auditor,
            vec![vec![7; 30]; right.len()],
            CapacityError::BadVerdict,
        ),
        (
            &auditor,
            vec![garbage_commitment(0, 31); right.len()],
            CapacityError::BadVerdict,
        ),
    ];
    for (who, r, want) in refused {
        let verdict = |o: &mut Overlay<'_>| capacity_verdict(o, &now, who, &v, &bob, 5, r);
        assert_eq!(call(&mut state, verdict), Err(want));
    }
    assert_eq!(state.root(), before, "refused verdicts change nothing");
}

/// Not opening is the worker's own choice (no peer is involved), but it is also what an
/// honest worker that crashed after claiming does: the claim is void and the worker owes
/// the slash, paid from its later income (bond only at exit), not slashed.
#[test]
fn an_unopened_audited_claim_is_void_and_leaves_a_debt_not_a_slash() {
    let bob = key("//Bob").1;
    let p = params_with(1_000_000);
    let mut state = genesis(p.clone());
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    claim(&mut state, slot, &bob, Play::Honest, 100);
    let bond = workers::worker(&state, &bob).unwrap().unwrap().bond;
    let mut events = Vec::new();
    for s in slot + 1..=slot + 2 + p.open_blocks {
        events.extend(start(&mut state, s, &v));
    }
    assert_eq!(credited(&events, &bob), None);
    assert!(!slashed(&events, &bob), "{events:?}");
    assert!(owes(&events, &bob), "{events:?}");
    assert_eq!(spot_checks::slashed(&state, &bob).unwrap(), 0);
    assert_eq!(owed::owed(&state, &bob).unwrap(), p.slash);
    assert_eq!(workers::worker(&state, &bob).unwrap().unwrap().bond, bond);
    assert_eq!(CLAIMS.get(&state, &claim_id(&bob, 5)).unwrap(), None);
}

#[test]
fn a_missing_auditor_is_replaced_and_the_audit_is_never_credited_by_default() {
    let bob = key("//Bob").1;
    let p = params_with(1_000_000);
    let mut state = genesis(p.clone());
    let v = validators();
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let c = claim(&mut state, slot, &bob, Play::Honest, 100);
    start(&mut state, slot + 1, &v);
    start(&mut state, slot + 2, &v);
    let now = ctx(slot + 3);
    let leaves = opening(&state, &c);
    start(&mut state, slot + 3, &v);
    call(&mut state, |o| open_capacity(o, &now, &bob, 5, &leaves)).unwrap();
    let mut events = Vec::new();
    for s in slot + 4..=slot + 3 + 2 * p.audit_blocks {
        events.extend(start(&mut state, s, &v));
    }
    assert_eq!(credited(&events, &bob), None);
    let audit = audit_of(&state, &c).unwrap();
    assert_eq!(audit.drawn.len(), 3, "two auditors missed their deadlines");
    assert!(audit.verdicts.is_empty());
}

fn verdict(matched: bool, recomputed: Vec<u8>) -> AuditVerdict {
    AuditVerdict {
        auditor: key("//Alice").1,
        recomputed: vec![recomputed],
        matched,
    }
}

#[test]
fn a_mismatch_decides_only_when_a_second_recomputation_agrees() {
    let seed = Hash::repeat_byte(2);
    let truth = true_commitment(&seed, 0, 32);
    let made_up = garbage_commitment(9, 32);
    let m = |r: &Vec<u8>| verdict(false, r.clone());
    let ok = verdict(true, truth.clone());
    assert_eq!(outcome(std::slice::from_ref(&ok)), Some(true));
    assert_eq!(
        outcome(&[m(&truth)]),
        None,
        "a mismatch never decides alone"
    );
    assert_eq!(outcome(&[m(&truth), m(&truth)]), Some(false));
    assert_eq!(outcome(&[m(&truth), m(&made_up)]), None, "they must agree");
    assert_eq!(outcome(&[m(&truth), ok.clone()]), None);
    assert_eq!(outcome(&[m(&truth), ok.clone(), m(&truth)]), Some(false));
    assert_eq!(
        outcome(&[m(&made_up), ok.clone(), ok]),
        Some(true),
        "framing fails"
    );
    assert_eq!(
        outcome(&[m(&truth), m(&made_up), m(&seed.0.to_vec())]),
        Some(true)
    );
}

/// Finding 2 against the capacity rules (the attack of `liveness_attack_tests.rs`):
/// //Alice, a quarter of the validators' bond, vouches for //Bob, who has no machine
/// and claims a full minute of made-up jobs every minute (re-registering after each
/// slash), while //Charlie computes honestly. At the defaults (`q` = 1/4, `S` = 10
/// minutes of reward) Bob's expected gain is `(1 - q D) u - q D S` with
/// `D = (1 - s)(1 - s^2)` = 0.70: -0.94 u a minute. Opening every drawn claim is his
/// best response: leaving one unopened costs `S` for certain (as a debt), opening
/// garbage to an honest auditor costs it only unless two colluders follow. Over 80
/// minutes he loses money; Charlie is credited every minute and never slashed.
#[test]
fn finding_2_a_colluding_validator_vouching_for_a_machineless_worker_loses_money() {
    let (alice, bob, charlie) = (key("//Alice").1, key("//Bob").1, key("//Charlie").1);
    let mut state = genesis(CapacityParams::default());
    let v = validators();
    let p = crate::params(&state).unwrap();
    let (mut bob_credit, mut bob_slashes, mut charlie_credit) = (0u64, 0u64, 0u64);
    for minute in 5..85u64 {
        if workers::worker(&state, &bob).unwrap().is_none() {
            let shards = vec![neuroshard_primitives::LayerRange::new(10, 20).unwrap()];
            state
                .commit(|o| workers::register_worker(o, 0, &bob, p.model.hash, shards))
                .unwrap();
        }
        let slot = run_to_claim_slot(&mut state, minute, &v);
        let b = claim(&mut state, slot, &bob, Play::Machineless, 163);
        let c = claim(&mut state, slot, &charlie, Play::Honest, 163);
        let settled = settle(&mut state, slot, &[&b, &c], Some(&alice));
        bob_credit += u64::from(settled[0].0);
        bob_slashes += u64::from(settled[0].1);
        assert!(!settled[1].1, "an honest worker is never slashed");
        charlie_credit += u64::from(settled[1].0);
    }
    let gain = Balance::from(bob_credit) * p.uptime_reward / 1_000_000;
    let lost = spot_checks::slashed(&state, &bob).unwrap();
    println!("Bob: {bob_credit} millionths of a minute credited, {bob_slashes} slashes, gain {gain}, lost {lost}");
    assert_eq!(
        lost,
        Balance::from(bob_slashes) * CapacityParams::default().slash
    );
    assert!(lost > gain, "vouching pays: gain {gain}, slashed {lost}");
    assert_eq!(
        charlie_credit,
        80 * 1_000_000,
        "honest capacity is paid every minute"
    );
}
