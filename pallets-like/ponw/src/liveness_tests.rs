//! Tests of liveness: heartbeats (proof of possession), validators' probe reports, the
//! prober draw, and that a minute is credited only with both halves of its proof.

use super::tests::{
    apply, beat, chunk_trees, ctx, genesis, key, model_file, prove_minute, validators, LAYERS,
};
use super::*;
use neuroshard_primitives::{AccountId, Event, LayerRange};
use neuroshard_support::StateDb;

fn report(
    state: &mut StateDb,
    minute: u64,
    prober: &str,
    validators: &[AccountId],
    answered: &[AccountId],
    failed: &[AccountId],
) -> Result<Vec<Event>> {
    let who = key(prober).1;
    let answered: Vec<_> = answered.iter().map(|w| (w.clone(), FAST)).collect();
    apply(state, |o| {
        report_liveness(
            o,
            &ctx(0, minute),
            &who,
            validators,
            minute,
            &answered,
            failed,
        )
    })
}

/// A throughput that earns whole minutes (the default reference).
const FAST: u64 = 200_000;

fn open_minute(state: &mut StateDb, minute: u64) -> Vec<Event> {
    apply(state, |o| liveness::record_minute_seed(o, &ctx(0, minute))).unwrap()
}

fn uptime(state: &StateDb, who: &AccountId) -> u64 {
    rewards::tallies(state)
        .unwrap()
        .into_iter()
        .find(|(w, _)| w == who)
        .map_or(0, |(_, t)| t.uptime_minutes)
}

fn credited(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::UptimeCredited { .. }))
}

#[test]
fn a_minute_is_credited_only_with_the_heartbeat_and_a_passed_probe() {
    let mut state = genesis();
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    let v = validators();
    // Minute 3: heartbeat first, then the probe.
    assert!(!credited(
        &beat(&mut state, &ctx(0, 3), &bob, 3, &model_file()).unwrap()
    ));
    assert_eq!(uptime(&state, &bob), 0, "possession alone earns nothing");
    let events = report(
        &mut state,
        3,
        "//Alice",
        &v,
        std::slice::from_ref(&bob),
        &[],
    )
    .unwrap();
    assert!(events.contains(&Event::LivenessProbed {
        worker: bob.clone(),
        minute: 3,
        prober: key("//Alice").1,
        answered: true,
        throughput: FAST,
    }));
    assert!(credited(&events));
    assert_eq!(uptime(&state, &bob), 1);
    // Minute 4: the probe first, then the heartbeat.
    open_minute(&mut state, 4);
    assert!(!credited(
        &report(
            &mut state,
            4,
            "//Alice",
            &v,
            std::slice::from_ref(&bob),
            &[]
        )
        .unwrap()
    ));
    assert!(credited(
        &beat(&mut state, &ctx(0, 4), &bob, 4, &model_file()).unwrap()
    ));
    assert_eq!(uptime(&state, &bob), 2);
    // Minute 5: Bob holds the model but refused the probe; Charlie answered it but shows
    // no chunk. Neither is credited, and minute 6 says why.
    beat(&mut state, &ctx(0, 5), &bob, 5, &model_file()).unwrap();
    let events = report(
        &mut state,
        5,
        "//Alice",
        &v,
        std::slice::from_ref(&charlie),
        std::slice::from_ref(&bob),
    )
    .unwrap();
    assert!(!credited(&events));
    let mut missed = open_minute(&mut state, 6);
    missed.sort_by_key(|e| format!("{e:?}"));
    let mut expected = vec![
        Event::ChallengeMissed {
            worker: bob.clone(),
            minute: 5,
            heartbeat: true,
            probed: false,
        },
        Event::ChallengeMissed {
            worker: charlie.clone(),
            minute: 5,
            heartbeat: false,
            probed: true,
        },
    ];
    expected.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(missed, expected);
    assert_eq!((uptime(&state, &bob), uptime(&state, &charlie)), (2, 0));
}

#[test]
fn only_the_drawn_validator_reports_once_per_minute_and_bad_reports_change_nothing() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    let v: Vec<AccountId> = ["//Alice", "//Ferdie", "//Bob"].map(|u| key(u).1).to_vec();
    open_minute(&mut state, 3);
    let seed = MINUTE_SEED.get(&state).unwrap().unwrap().1;
    let drawn = prober_of(&seed, &bob, &v).unwrap().clone();
    assert_ne!(drawn, bob, "a worker is never its own prober among others");
    let other = if drawn == key("//Alice").1 {
        "//Ferdie"
    } else {
        "//Alice"
    };
    let drawn_uri = if drawn == key("//Alice").1 {
        "//Alice"
    } else {
        "//Ferdie"
    };
    let before = state.root();
    let refused = [
        (
            report(&mut state, 3, other, &v, std::slice::from_ref(&bob), &[]),
            Error::NothingToReport,
        ),
        (
            report(&mut state, 3, "//Bob", &v, std::slice::from_ref(&bob), &[]),
            Error::NothingToReport,
        ),
        (
            report(&mut state, 3, "//Dave", &v, std::slice::from_ref(&bob), &[]),
            Error::NotAValidator,
        ),
        (
            apply(&mut state, |o| {
                report_liveness(o, &ctx(0, 3), &drawn, &v, 4, &[(bob.clone(), FAST)], &[])
            }),
            Error::WrongMinute {
                claimed: 4,
                current: 3,
            },
        ),
        (
            report(&mut state, 3, drawn_uri, &v, &vec![bob.clone(); 1025], &[]),
            Error::TooManyLivenessEntries { count: 1025 },
        ),
        (
            report(&mut state, 3, drawn_uri, &v, &[key("//Eve").1], &[]),
            Error::NothingToReport,
        ),
    ];
    for (got, want) in refused {
        assert_eq!(got, Err(want));
    }
    assert_eq!(state.root(), before, "refused reports change nothing");
    // The drawn validator's report counts once; a second one (even a different verdict)
    // records nothing.
    report(
        &mut state,
        3,
        drawn_uri,
        &v,
        &[],
        std::slice::from_ref(&bob),
    )
    .unwrap();
    assert_eq!(
        report(
            &mut state,
            3,
            drawn_uri,
            &v,
            std::slice::from_ref(&bob),
            &[]
        ),
        Err(Error::NothingToReport)
    );
    // No seed for a minute whose first block is not in yet.
    let mut fresh = genesis();
    assert_eq!(
        report(&mut fresh, 3, "//Alice", &validators(), &[bob], &[]),
        Err(Error::NoChallenge(3))
    );
}

#[test]
fn probers_are_spread_over_the_other_validators() {
    let v: Vec<AccountId> = (0..4u8).map(|i| AccountId::from([i; 32])).collect();
    let worker = v[2].clone();
    let mut counts = [0usize; 4];
    for i in 0..4_000u32 {
        let seed = neuroshard_primitives::blake2_256(&i.to_le_bytes());
        let p = prober_of(&seed, &worker, &v).unwrap();
        counts[v.iter().position(|x| x == p).unwrap()] += 1;
    }
    assert_eq!(counts[2], 0);
    assert!(
        [0, 1, 3]
            .iter()
            .all(|&i| (1_100..1_570).contains(&counts[i])),
        "{counts:?}"
    );
    let seed = Hash::zero();
    assert_eq!(
        prober_of(&seed, &worker, &v[2..3]),
        Some(&worker),
        "a sole validator probes itself"
    );
    assert_eq!(prober_of(&seed, &worker, &[]), None);
}

#[test]
fn probe_tasks_name_an_announced_shard_until_reported() {
    let mut state = genesis();
    let (alice, bob, charlie) = (key("//Alice").1, key("//Bob").1, key("//Charlie").1);
    assert!(
        probe_tasks(&state, &validators(), &alice)
            .unwrap()
            .is_empty(),
        "no seed yet"
    );
    open_minute(&mut state, 3);
    let tasks = probe_tasks(&state, &validators(), &alice).unwrap();
    assert_eq!(tasks.len(), 2);
    let seed = MINUTE_SEED.get(&state).unwrap().unwrap().1;
    for t in &tasks {
        assert_eq!((t.minute, &t.prober), (3, &alice));
        let info = worker(&state, &t.worker).unwrap().unwrap();
        assert!(info.shards.contains(&t.layers));
        assert_ne!(t.input_seed, seed, "each worker's input is its own");
    }
    assert_eq!(
        tasks.iter().find(|t| t.worker == bob).unwrap().layers,
        LayerRange::new(10, 20).unwrap()
    );
    assert!(
        probe_tasks(&state, &validators(), &bob).unwrap().is_empty(),
        "not Bob's to probe"
    );
    report(
        &mut state,
        3,
        "//Alice",
        &validators(),
        std::slice::from_ref(&bob),
        &[],
    )
    .unwrap();
    let left: Vec<_> = probe_tasks(&state, &validators(), &alice)
        .unwrap()
        .into_iter()
        .map(|t| t.worker)
        .collect();
    assert_eq!(left, vec![charlie]);
}

#[test]
fn uptime_survives_reregistration_but_not_deregistration() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    prove_minute(&mut state, &ctx(0, 3), &bob);
    let shards = vec![LayerRange::new(0, 10).unwrap()];
    apply(&mut state, |o| {
        register_worker(o, 2, &bob, super::tests::model(), shards)
    })
    .unwrap();
    let info = worker(&state, &bob).unwrap().unwrap();
    assert_eq!(info.last_credited_minute, Some(3));
    assert_eq!(
        beat(&mut state, &ctx(0, 3), &bob, 3, &model_file()),
        Err(Error::HeartbeatAlreadyAccepted(3)),
        "re-registering does not open the minute again"
    );
    assert_eq!(uptime(&state, &bob), 1);
}

#[test]
fn a_minute_without_an_answer_is_reported_when_the_next_one_opens() {
    let mut state = genesis();
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    // Minute 3: Bob proves it, Charlie does not.
    prove_minute(&mut state, &ctx(0, 3), &bob);
    // Another block in minute 3 reports nothing; the first block of minute 4 does.
    let same = apply(&mut state, |o| liveness::record_minute_seed(o, &ctx(0, 3))).unwrap();
    assert!(same.is_empty());
    let opened = apply(&mut state, |o| liveness::record_minute_seed(o, &ctx(0, 4))).unwrap();
    assert_eq!(
        opened,
        vec![Event::ChallengeMissed {
            worker: charlie.clone(),
            minute: 3,
            heartbeat: false,
            probed: false,
        }]
    );
    // Minute 4: nobody answers; minute 7 opens (5 and 6 had no block, so no challenge).
    let opened = apply(&mut state, |o| liveness::record_minute_seed(o, &ctx(0, 7))).unwrap();
    let mut missed: Vec<_> = opened
        .iter()
        .map(|e| match e {
            Event::ChallengeMissed { worker, minute, .. } => (worker.clone(), *minute),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    missed.sort();
    let mut expected = vec![(bob, 4), (charlie, 4)];
    expected.sort();
    assert_eq!(missed, expected);
}

#[test]
fn heartbeats_need_registration_the_model_and_count_once_per_minute() {
    let mut state = genesis();
    let bob = key("//Bob").1;
    let file = model_file();
    beat(&mut state, &ctx(0, 3), &bob, 3, &file).unwrap();
    assert_eq!(
        beat(&mut state, &ctx(0, 3), &bob, 3, &file),
        Err(Error::HeartbeatAlreadyAccepted(3))
    );
    assert_eq!(
        beat(&mut state, &ctx(0, 4), &bob, 9, &file),
        Err(Error::WrongMinute {
            claimed: 9,
            current: 4
        })
    );
    assert_eq!(
        beat(&mut state, &ctx(0, 4), &key("//Eve").1, 4, &file),
        Err(Error::NotAWorker)
    );
    // A worker without the model (here: wrong bytes) cannot answer.
    let mut other = file.clone();
    other.iter_mut().for_each(|b| *b ^= 0x5a);
    assert_eq!(
        beat(&mut state, &ctx(0, 5), &bob, 5, &other),
        Err(Error::WrongChunk)
    );
    // Another worker's answer (another chunk index) does not fit Bob's challenge.
    let charlie = key("//Charlie").1;
    let c_bob = challenge(&state, &bob).unwrap().unwrap();
    let c_charlie = challenge(&state, &charlie).unwrap().unwrap();
    if (c_bob.layer, c_bob.chunk_index) != (c_charlie.layer, c_charlie.chunk_index) {
        let layers = fixtures::layer_bytes(&file, LAYERS);
        let (chunk, proof) = fixtures::answer(&c_charlie, &layers, &chunk_trees());
        assert_eq!(
            apply(&mut state, |o| heartbeat(
                o,
                &ctx(0, 5),
                &bob,
                5,
                &chunk,
                &proof
            )),
            Err(Error::WrongChunk)
        );
    }
    // No challenge before the minute's first block.
    assert_eq!(
        apply(&mut state, |o| heartbeat(o, &ctx(0, 6), &bob, 6, &[], &[])),
        Err(Error::NoChallenge(6))
    );
    beat(&mut state, &ctx(0, 5), &bob, 5, &file).unwrap();
    apply(&mut state, |o| deregister_worker(o, &bob)).unwrap();
    assert_eq!(
        beat(&mut state, &ctx(0, 7), &bob, 7, &file),
        Err(Error::NotAWorker)
    );
}

#[test]
fn possession_is_shown_for_the_served_layers_only() {
    // Bob serves layers 10-20. A node holding those layers' bytes and nothing else
    // answers every minute; one holding every other layer but not his answers none.
    let bob = key("//Bob").1;
    let file = model_file();
    let layers = fixtures::layer_bytes(&file, LAYERS);
    let mask = |keep: &dyn Fn(usize) -> bool| -> Vec<u8> {
        layers
            .iter()
            .enumerate()
            .flat_map(|(l, bytes)| {
                let keep = keep(l);
                bytes.iter().map(move |b| if keep { *b } else { !*b })
            })
            .collect()
    };
    let only_his = mask(&|l| (10..20).contains(&l));
    let all_but_his = mask(&|l| !(10..20).contains(&l));
    let mut state = genesis();
    let mut challenged = std::collections::BTreeSet::new();
    for minute in 3..40 {
        let c = ctx(0, minute);
        beat(&mut state, &c, &bob, minute, &only_his).unwrap();
        challenged.insert(challenge(&state, &bob).unwrap().unwrap().layer);
    }
    assert!(challenged.iter().all(|l| (10..20).contains(l)));
    assert!(
        challenged.len() > 3,
        "challenges spread over his layers: {challenged:?}"
    );
    let mut state = genesis();
    for minute in 3..10 {
        assert_eq!(
            beat(&mut state, &ctx(0, minute), &bob, minute, &all_but_his),
            Err(Error::WrongChunk)
        );
    }
}

/// `who`'s tally as (minutes, credit in millionths of a minute).
fn credit(state: &StateDb, who: &AccountId) -> (u64, u64) {
    rewards::tallies(state)
        .unwrap()
        .into_iter()
        .find(|(w, _)| w == who)
        .map_or((0, 0), |(_, t)| (t.uptime_minutes, t.uptime_credit))
}

/// Issue 21: a minute earns `min(1, proven / reference)` of a minute, the event says how
/// much, and the payout follows the credit, not the number of minutes.
#[test]
fn uptime_credit_is_the_proven_throughput_over_the_reference_capped_at_one_minute() {
    let mut state = genesis();
    let (bob, charlie) = (key("//Bob").1, key("//Charlie").1);
    let v = validators();
    let reference = ProbeParams::default().reference_throughput;
    for (who, minute) in [(&bob, 3), (&charlie, 3)] {
        beat(&mut state, &ctx(0, minute), who, minute, &model_file()).unwrap();
    }
    let alice = key("//Alice").1;
    let events = apply(&mut state, |o| {
        report_liveness(
            o,
            &ctx(0, 3),
            &alice,
            &v,
            3,
            &[
                (bob.clone(), reference / 4),
                (charlie.clone(), reference * 3),
            ],
            &[],
        )
    })
    .unwrap();
    let credits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::UptimeCredited {
                worker,
                credit_permill,
                ..
            } => Some((worker.clone(), *credit_permill)),
            _ => None,
        })
        .collect();
    assert!(credits.contains(&(bob.clone(), 250_000)), "{credits:?}");
    assert!(credits.contains(&(charlie.clone(), 1_000_000)), "capped");
    assert_eq!(credit(&state, &bob), (1, 250_000));
    let p = crate::params(&state).unwrap();
    let tally = rewards::WorkTally {
        uptime_minutes: 1,
        uptime_credit: 250_000,
        ..Default::default()
    };
    assert_eq!(reward_for(&p, &tally), p.uptime_reward / 4);
    // An "answered" entry proving nothing is a failed probe.
    open_minute(&mut state, 4);
    beat(&mut state, &ctx(0, 4), &bob, 4, &model_file()).unwrap();
    let events = apply(&mut state, |o| {
        report_liveness(o, &ctx(0, 4), &alice, &v, 4, &[(bob.clone(), 0)], &[])
    })
    .unwrap();
    assert!(!credited(&events));
    assert_eq!(credit(&state, &bob), (1, 250_000));
}

/// Issue 21, the credit arithmetic: K accounts on one machine that split its work in
/// the shared probe window (any split, here the even one) earn together at most what
/// the machine earns registered once: <= 1.1x for every machine at or below the
/// reference. Above it, the cap of one minute per account is what a split recovers (a
/// machine of twice the reference earns 1 minute once and 2 as two accounts), which is
/// why the reference is set at the strongest machine one account is expected to be
/// (docs/PONW-SECURITY.md).
#[test]
fn splitting_one_machine_into_many_accounts_earns_no_more_than_registering_it_once() {
    let p = ProbeParams::default();
    let r = p.reference_throughput;
    let twice = u64::from(p.credit_permill(2 * r));
    assert_eq!(twice, 1_000_000, "capped at one minute");
    assert_eq!(
        2 * u64::from(p.credit_permill(r)),
        2 * twice,
        "the known limit"
    );
    for machine in [1_000, 7_000, r / 2, r - 1, r] {
        let once = u64::from(p.credit_permill(machine));
        for k in 1..=64u64 {
            let split: u64 = (0..k)
                .map(|_| u64::from(p.credit_permill(machine / k)))
                .sum();
            assert!(
                split * 10 <= once * 11,
                "{k} accounts of {machine}: {split} > {once}"
            );
        }
    }
}

#[test]
fn every_probe_of_a_minute_fires_at_one_instant_inside_the_minute() {
    let seed = neuroshard_primitives::Hash::repeat_byte(9);
    let at = probe_instant_ms(7, &seed);
    assert_eq!(at, probe_instant_ms(7, &seed));
    assert!((7 * 60_000 + 15_000..7 * 60_000 + 35_000).contains(&at));
    assert_ne!(
        at,
        probe_instant_ms(7, &neuroshard_primitives::Hash::repeat_byte(8))
    );
}
