//! Capacity claims through signed extrinsics and real blocks (issue 24): the chain
//! records the minute's beacon, a worker's free `ClaimCapacity` is included, the claim
//! is drawn for audit two blocks later, the worker's `OpenCapacity` and the drawn
//! auditor's `CapacityVerdict` settle it, and the credit is paid at the epoch's end; a
//! second claim of the minute is not included and costs nothing.

use crate::tests::{account, test_config, Chain};
use neuroshard_ponw::capacity::{self, CapacityParams, BEACON};
use neuroshard_ponw::capacity_audit::AUDITS;
use neuroshard_ponw::fixtures::capacity_commitment;
use neuroshard_primitives::{merkle, Call, Event, Hash, PonwCall};

/// Produces empty blocks until the current minute's beacon is in a block before the
/// next one (a claim may then be included).
fn run_to_beacon(chain: &mut Chain) -> capacity::Beacon {
    for _ in 0..60 {
        chain.produce(vec![]);
        if let Some(b) = BEACON.get(&chain.state).unwrap() {
            if b.block <= chain.head.number && b.minute == chain.head.slot() * 2_000 / 60_000 {
                return b;
            }
        }
    }
    panic!("no beacon in 60 blocks");
}

#[test]
fn a_claim_is_drawn_opened_judged_and_paid_through_extrinsics() {
    let mut config = test_config();
    config.params.ponw.capacity = CapacityParams {
        audit_permill: 1_000_000,
        ..CapacityParams::default()
    };
    let mut chain = Chain::from_config(&config);
    let bob = account("//Bob");
    let beacon = run_to_beacon(&mut chain);
    let seed = capacity::job_input_seed(&beacon.value, &bob);
    let p = config.params.ponw.capacity.clone();
    let jobs = 40u32;
    let leaves: Vec<Vec<u8>> = (0..jobs)
        .map(|j| capacity_commitment(&seed, j, p.positions))
        .collect();
    let levels = merkle::levels(leaves.iter().map(|l| capacity::leaf_hash(l)).collect());
    let claim = Call::Ponw(PonwCall::ClaimCapacity {
        minute: beacon.minute,
        jobs,
        root: merkle::root_of_levels(&levels),
    });
    let xt = chain.sign("//Bob", 0, claim.clone());
    assert_eq!(chain.runtime.fee_of(&chain.state, &xt).unwrap(), 0, "free");
    let free = chain.free("//Bob");
    let (block, _, rejected) = chain.produce(vec![xt]);
    assert_eq!((block.extrinsics.len(), rejected), (1, 0));
    // Twice in a minute: not included, nothing paid.
    let (block, _, rejected) = chain.produce(vec![chain.sign("//Bob", 1, claim)]);
    assert_eq!((block.extrinsics.len(), rejected), (0, 1));
    assert_eq!(chain.free("//Bob"), free);
    chain.produce(vec![]);
    let id = capacity::claim_id(&bob, beacon.minute);
    let audit = AUDITS.get(&chain.state, &id).unwrap().expect("drawn");
    assert_eq!(audit.drawn, vec![account("//Alice")], "the only validator");
    let opened: Vec<(Vec<u8>, Vec<Option<Hash>>)> = audit
        .indices
        .iter()
        .map(|i| {
            (
                leaves[*i as usize].clone(),
                merkle::proof(&levels, *i as usize),
            )
        })
        .collect();
    let open = Call::Ponw(PonwCall::OpenCapacity {
        minute: beacon.minute,
        leaves: opened.clone(),
    });
    let (block, _, _) = chain.produce(vec![chain.sign("//Bob", 1, open)]);
    assert_eq!(block.extrinsics.len(), 1);
    let verdict = Call::Ponw(PonwCall::CapacityVerdict {
        worker: bob.clone(),
        minute: beacon.minute,
        recomputed: opened.into_iter().map(|(leaf, _)| leaf).collect(),
    });
    let (block, events, _) = chain.produce(vec![chain.sign("//Alice", 0, verdict)]);
    assert_eq!(block.extrinsics.len(), 1);
    let layers = 30; // Bob serves the whole model
    let want = capacity::credit_permill(&p, jobs, layers, beacon.window_ms);
    assert!(want > 0);
    assert!(events.iter().any(|e| matches!(e,
        Event::UptimeCredited { worker, credit_permill, .. } if *worker == bob && *credit_permill == want)));
    let mut paid = None;
    for _ in 0..config.params.system.epoch_length {
        let (_, events, _) = chain.produce(vec![]);
        paid = paid.or(events.into_iter().find_map(|e| match e {
            Event::RewardPaid {
                account,
                uptime_credit,
                reward,
                ..
            } if account == bob => Some((uptime_credit, reward)),
            _ => None,
        }));
    }
    let uptime_reward = config.params.ponw.uptime_reward;
    assert_eq!(
        paid,
        Some((
            u64::from(want),
            u128::from(want) * uptime_reward / 1_000_000
        ))
    );
}
