//! Tests of capacity claims and their audits (`capacity`, `capacity_audit`): the beacon,
//! every refusal of a hostile claim, opening or verdict, the credit, the audit draw,
//! the quorum, the slash, and finding 2's attack replayed against these rules.

use super::capacity::*;
use super::capacity_audit::*;
use super::tests::key;
use super::*;
use neuroshard_primitives::commitment::{ActivationCommitment, PositionTopK};
use neuroshard_primitives::{blake2_256, merkle, AccountId, Event, LayerRange, UNIT};
use neuroshard_support::{BlockContext, StateDb};

pub(crate) const SLOT_MS: u64 = 2_000;
pub(crate) const SLOTS_PER_MINUTE: u64 = 60_000 / SLOT_MS;

/// Block `slot` of a chain authoring every slot (block number = slot).
pub(crate) fn ctx(slot: u64) -> BlockContext {
    BlockContext {
        number: slot,
        parent_hash: blake2_256(&(slot.saturating_sub(1)).to_le_bytes()),
        slot,
        author: key("//Alice").1,
        epoch: 0,
        minute: slot * SLOT_MS / 60_000,
        randomness: blake2_256(&(b"randomness", slot).encode()),
    }
}

/// Genesis with //Bob and //Charlie registered (funded for re-registration) and the
/// given capacity parameters.
pub(crate) fn genesis(capacity: CapacityParams) -> StateDb {
    let p = Params {
        capacity,
        ..super::tests::params()
    };
    let range = |a, b| LayerRange::new(a, b).unwrap();
    fixtures::Genesis::new(p)
        .fund(key("//Bob").1, 1_000 * UNIT)
        .fund(key("//Charlie").1, 1_000 * UNIT)
        .worker(key("//Bob").1, vec![range(10, 20)])
        .worker(key("//Charlie").1, vec![range(0, 10), range(20, 30)])
        .build()
}

/// Four validators of equal bond; //Alice is the colluder in the attack tests.
pub(crate) fn validators() -> Vec<(AccountId, Balance)> {
    ["//Alice", "//Ferdie", "//Dave", "//Eve"]
        .map(|u| (key(u).1, 1))
        .to_vec()
}

/// Runs the start of block `slot`.
pub(crate) fn start(state: &mut StateDb, slot: u64, v: &[(AccountId, Balance)]) -> Vec<Event> {
    let c = ctx(slot);
    state
        .commit(|o| {
            liveness::record_minute_seed(o, &c)?;
            record_beacon(o, &c, SLOT_MS).map_err(pallet_error)?;
            capacity_audit::on_initialize(o, &c, v).map_err(pallet_error)
        })
        .unwrap()
}

fn pallet_error(e: CapacityError) -> Error {
    match e {
        CapacityError::Pallet(e) => e,
        other => panic!("{other}"),
    }
}

/// Applies a capacity call in block `slot`.
pub(crate) fn call(
    state: &mut StateDb,
    f: impl FnOnce(&mut Overlay<'_>) -> CapacityResult<()>,
) -> CapacityResult<Vec<Event>> {
    let mut result = Ok(());
    let events = state
        .commit(|o| {
            result = f(o);
            if result.is_err() {
                return Err(Error::NothingToReport);
            }
            Ok(())
        })
        .unwrap_or_default();
    result.map(|()| events)
}

/// The commitment a correct run of job `j` from `seed` produces (see the fixture).
pub(crate) use crate::fixtures::capacity_commitment as true_commitment;

/// Made-up commitments of the right shape (no compute behind them).
pub(crate) fn garbage_commitment(j: u32, positions: u32) -> Vec<u8> {
    let per: Vec<PositionTopK> = (0..positions)
        .map(|i| PositionTopK {
            norm: 50.0 + (i + j) as f32,
            top: vec![(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)],
        })
        .collect();
    ActivationCommitment::from_positions(0, &per).encode()
}

/// A worker's leaves for `jobs` jobs and their tree's levels.
pub(crate) fn tree(leaves: &[Vec<u8>]) -> Vec<Vec<Hash>> {
    merkle::levels(leaves.iter().map(|l| leaf_hash(l)).collect())
}

/// Finds the first slot of `minute` at which a claim may be included (the block after
/// the beacon's), running the blocks up to it.
pub(crate) fn run_to_claim_slot(
    state: &mut StateDb,
    minute: u64,
    v: &[(AccountId, Balance)],
) -> u64 {
    let mut slot = minute * SLOTS_PER_MINUTE;
    loop {
        start(state, slot, v);
        if BEACON
            .get(&*state)
            .unwrap()
            .is_some_and(|b| b.minute == minute && b.block < slot)
        {
            return slot;
        }
        slot += 1;
    }
}

#[test]
fn the_beacon_is_the_first_block_at_or_after_the_instant_slot_once_a_minute() {
    let mut state = genesis(CapacityParams::default());
    let v = validators();
    let first = 5 * SLOTS_PER_MINUTE;
    start(&mut state, first, &v);
    let seed = liveness::MINUTE_SEED.get(&state).unwrap().unwrap().1;
    let instant = instant_slot(5, &seed, SLOT_MS);
    assert!(
        (first + 7..first + 18).contains(&instant),
        "15-35 s into the minute"
    );
    assert_eq!(BEACON.get(&state).unwrap(), None);
    // Slots before the instant have no block (the author missed them): the next does.
    start(&mut state, instant + 1, &v);
    let beacon = BEACON.get(&state).unwrap().unwrap();
    assert_eq!(
        (beacon.minute, beacon.block, beacon.slot),
        (5, instant + 1, instant + 1)
    );
    assert_eq!(beacon.value, ctx(instant + 1).randomness);
    assert_eq!(beacon.window_ms, 2 * SLOT_MS);
    start(&mut state, instant + 2, &v);
    assert_eq!(BEACON.get(&state).unwrap(), Some(beacon), "once a minute");
}

#[test]
fn hostile_claims_are_refused_and_change_nothing() {
    let p = CapacityParams::default();
    let mut state = genesis(p.clone());
    let v = validators();
    let (bob, dave) = (key("//Bob").1, key("//Dave").1);
    let claim = |minute, jobs| CapacityClaim {
        minute,
        jobs,
        root: Hash::repeat_byte(1),
    };
    // Before the beacon.
    start(&mut state, 5 * SLOTS_PER_MINUTE, &v);
    let early = ctx(5 * SLOTS_PER_MINUTE);
    assert_eq!(
        call(&mut state, |o| claim_capacity(
            o,
            &early,
            &bob,
            &claim(5, 10)
        )),
        Err(CapacityError::NoBeacon(5))
    );
    let slot = run_to_claim_slot(&mut state, 5, &v);
    let beacon = BEACON.get(&state).unwrap().unwrap();
    let before = state.root();
    let refused = [
        (
            ctx(beacon.block),
            &bob,
            claim(5, 10),
            CapacityError::ClaimBeforeBeacon,
        ),
        (ctx(slot), &bob, claim(4, 10), CapacityError::NoBeacon(4)),
        (
            ctx(slot),
            &bob,
            claim(5, 0),
            CapacityError::BadJobCount {
                jobs: 0,
                max: p.max_jobs,
            },
        ),
        (
            ctx(slot),
            &bob,
            claim(5, p.max_jobs + 1),
            CapacityError::BadJobCount {
                jobs: p.max_jobs + 1,
                max: p.max_jobs,
            },
        ),
        (
            ctx(slot),
            &dave,
            claim(5, 10),
            CapacityError::Pallet(Error::NotAWorker),
        ),
        (
            ctx(beacon.slot + p.window_slots + 1),
            &bob,
            claim(5, 10),
            CapacityError::ClaimTooLate {
                deadline: beacon.slot + p.window_slots,
            },
        ),
    ];
    for (c, who, cl, want) in refused {
        assert_eq!(
            call(&mut state, |o| claim_capacity(o, &c, who, &cl)),
            Err(want)
        );
    }
    assert_eq!(state.root(), before, "refused claims change nothing");
    // The last slot of the window is in time; a second claim of the minute is not.
    let last = ctx(beacon.slot + p.window_slots);
    call(&mut state, |o| {
        claim_capacity(o, &last, &bob, &claim(5, 10))
    })
    .unwrap();
    assert_eq!(
        call(&mut state, |o| claim_capacity(
            o,
            &last,
            &bob,
            &claim(5, 11)
        )),
        Err(CapacityError::AlreadyClaimed(5))
    );
    let pending = CLAIMS.get(&state, &claim_id(&bob, 5)).unwrap().unwrap();
    assert_eq!(pending.layers, LayerRange::new(10, 20).unwrap());
    assert_eq!(pending.input_seed, job_input_seed(&beacon.value, &bob));
    assert_ne!(
        pending.input_seed,
        job_input_seed(&beacon.value, &key("//Charlie").1)
    );
}

/// The credit is `min(1, work / (reference x window))` on chain time, and subadditive:
/// K accounts splitting one machine's jobs of the shared window earn at most what it
/// earns registered once (issue 21's bound, with no prober's clock).
#[test]
fn the_credit_is_work_over_the_reference_window_and_splitting_a_machine_gains_nothing() {
    let p = CapacityParams::default();
    let window = 2 * SLOT_MS;
    // A reference machine does 13,000 x 4 s = 52,000 layer-positions: 162.5 jobs of 32
    // positions on 10 layers.
    assert_eq!(credit_permill(&p, 162, 10, window), 996_923);
    assert_eq!(credit_permill(&p, 163, 10, window), 1_000_000);
    assert_eq!(credit_permill(&p, 81, 10, window), 498_461);
    assert_eq!(
        credit_permill(&p, p.max_jobs, 128, window),
        1_000_000,
        "capped"
    );
    for jobs in [1u32, 7, 50, 100, 162] {
        let once = u64::from(credit_permill(&p, jobs, 10, window));
        for k in 1..=16u32 {
            let split: u64 = (0..k)
                .map(|i| {
                    u64::from(credit_permill(
                        &p,
                        jobs / k + u32::from(i < jobs % k),
                        10,
                        window,
                    ))
                })
                .sum();
            assert!(
                split <= once,
                "{k} accounts of {jobs} jobs: {split} > {once}"
            );
        }
    }
}

#[test]
fn indices_are_distinct_in_range_and_at_least_two() {
    let seed = Hash::repeat_byte(3);
    let id = Hash::repeat_byte(4);
    assert_eq!(sample_indices(&seed, &id, 1, 50_000), vec![0]);
    let two = sample_indices(&seed, &id, 2, 50_000);
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    let many = sample_indices(&seed, &id, 1_000, 50_000);
    assert_eq!(many.len(), 50);
    let mut sorted = many.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 50);
    assert!(many.iter().all(|i| *i < 1_000));
    assert_ne!(
        many,
        sample_indices(&Hash::repeat_byte(5), &id, 1_000, 50_000)
    );
    // Auditors exclude the worker and earlier auditors while the set allows.
    let v = validators();
    let worker = key("//Ferdie").1;
    for round in 0..20 {
        let a = draw_auditor(&v, &seed, &id, round, &worker, &[key("//Alice").1]).unwrap();
        assert!(a != worker && a != key("//Alice").1);
    }
    let all: Vec<AccountId> = v.iter().map(|(a, _)| a.clone()).collect();
    assert!(
        draw_auditor(&v, &seed, &id, 0, &worker, &all).is_some(),
        "falls back to anyone"
    );
    assert_eq!(draw_auditor(&[], &seed, &id, 0, &worker, &[]), None);
}
