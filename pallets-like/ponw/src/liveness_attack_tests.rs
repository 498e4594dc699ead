//! Issue 24, finding 2, written as an attack on today's runtime: a validator drawn to
//! probe its partner reports the probe as answered at full throughput although the
//! partner never received a probe or computed anything. `report_liveness` believes the
//! drawn prober, nobody re-checks the throughput, and the false report costs the
//! prober nothing, so every minute the colluder is drawn (its share `1/N` of the
//! validators) pays the partner a whole uptime minute.
//!
//! The test asserts that the attack SUCCEEDS: it documents the open hole (as
//! `sim/econ/tests/econ.rs` lists finding 2 as known open). When uptime is credited
//! from chain-anchored capacity claims audited by drawn checkers (the design in
//! docs/PONW-SECURITY.md, "Capacity claims on chain time"), the credit below must be
//! zero and the assertions invert.

use super::tests::{apply, beat, ctx, genesis, key, model_file};
use super::*;
use neuroshard_primitives::{AccountId, Event};

/// The machineless partner earns one whole minute for every minute its colluding
/// validator is drawn to probe it, and the colluder loses nothing.
#[test]
fn known_open_a_colluding_prober_credits_a_worker_that_never_computed() {
    let mut state = genesis();
    let bob = key("//Bob").1; // the partner: holds the (public) model file, no compute
    let (alice, ferdie) = (key("//Alice").1, key("//Ferdie").1);
    let v: Vec<AccountId> = vec![alice.clone(), ferdie.clone()];
    let reference = ProbeParams::default().reference_throughput;
    let (mut drawn_minutes, mut credited_minutes) = (0u64, 0u64);
    for minute in 3..63u64 {
        // Possession costs a chunk read from the public model file: no machine needed.
        beat(&mut state, &ctx(0, minute), &bob, minute, &model_file()).unwrap();
        let seed = liveness::MINUTE_SEED.get(&state).unwrap().unwrap().1;
        if prober_of(&seed, &bob, &v) != Some(&alice) {
            continue;
        }
        drawn_minutes += 1;
        // No probe was sent and nothing was computed; Alice reports full throughput.
        let events = apply(&mut state, |o| {
            report_liveness(
                o,
                &ctx(0, minute),
                &alice,
                &v,
                minute,
                &[(bob.clone(), reference)],
                &[],
            )
        })
        .unwrap();
        credited_minutes += u64::from(events.iter().any(|e| {
            matches!(e, Event::UptimeCredited { worker, credit_permill: 1_000_000, .. }
                if *worker == bob)
        }));
    }
    let tally = rewards::tallies(&state)
        .unwrap()
        .into_iter()
        .find(|(w, _)| *w == bob)
        .map(|(_, t)| t)
        .unwrap_or_default();
    let p = crate::params(&state).unwrap();
    // About half the 60 minutes draw Alice among two validators (seeded: deterministic).
    assert!(
        drawn_minutes >= 10,
        "Alice drawn in {drawn_minutes} minutes"
    );
    assert_eq!(
        credited_minutes, drawn_minutes,
        "the hole: every drawn minute pays"
    );
    assert_eq!(tally.uptime_credit, drawn_minutes * 1_000_000);
    assert_eq!(
        reward_for(&p, &tally),
        Balance::from(drawn_minutes) * p.uptime_reward,
        "uptime reward paid for no work"
    );
    // Nothing on chain can void the credit or charge Alice: no event names her report
    // as disputed and no extrinsic takes evidence against a throughput report.
}
