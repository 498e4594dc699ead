//! Tests of bonding, unbonding delays and the validator bond floor.

use super::*;
use neuroshard_support::StateDb;

fn who(n: u8) -> AccountId {
    AccountId::from([n; 32])
}

fn ctx(number: BlockNumber) -> BlockContext {
    BlockContext {
        number,
        parent_hash: neuroshard_primitives::Hash::zero(),
        slot: number,
        author: who(0),
        epoch: 0,
        minute: 0,
        randomness: neuroshard_primitives::Hash::zero(),
    }
}

fn genesis() -> StateDb {
    let bp = balances::fixtures::params();
    let sp = Params {
        unbonding_blocks: 10,
        min_validator_bond: 100,
    };
    let mut state = StateDb::new();
    state
        .commit(|o| {
            balances::build_genesis(o, &bp, &[(who(1), 1_000), (who(2), 1_000)])?;
            build_genesis(o, &sp, &[(who(1), 300)])
        })
        .unwrap();
    state
}

#[test]
fn genesis_bonds_validators() {
    let state = genesis();
    assert_eq!(validators(&state).unwrap(), vec![who(1)]);
    let a = balances::account(&state, &who(1)).unwrap();
    assert_eq!((a.free, a.bonded), (700, 300));
}

#[test]
fn unbond_waits_for_the_delay() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    bond(&mut o, &who(2), 400).unwrap();
    unbond(&mut o, &ctx(5), &who(2), 150).unwrap();
    let a = balances::account(&o, &who(2)).unwrap();
    assert_eq!((a.free, a.reserved, a.bonded), (600, 150, 250));
    assert_eq!(
        o.transactional(|o| withdraw_unbonded(o, &ctx(14), &who(2))),
        Err(Error::NothingToWithdraw)
    );
    withdraw_unbonded(&mut o, &ctx(15), &who(2)).unwrap();
    let a = balances::account(&o, &who(2)).unwrap();
    assert_eq!((a.free, a.reserved, a.bonded), (750, 0, 250));
    assert!(unbonding(&o, &who(2)).unwrap().is_empty());
}

#[test]
fn validator_keeps_minimum_bond() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    let err = o
        .transactional(|o| unbond(o, &ctx(1), &who(1), 250))
        .unwrap_err();
    assert_eq!(
        err,
        Error::ValidatorBondTooLow {
            minimum: 100,
            remaining: 50
        }
    );
    unbond(&mut o, &ctx(1), &who(1), 200).unwrap();
    assert!(matches!(
        o.transactional(|o| bond(o, &who(2), 5_000)),
        Err(Error::Balances(balances::Error::InsufficientBalance { .. }))
    ));
}

fn sealed(key: &neuroshard_primitives::Keypair, slot: u64, number: BlockNumber) -> Header {
    use sp_core::Pair as _;
    let mut h = Header {
        parent_hash: neuroshard_primitives::Hash::repeat_byte(3),
        number,
        state_root: neuroshard_primitives::Hash::zero(),
        extrinsics_root: neuroshard_primitives::Hash::zero(),
        digest: neuroshard_primitives::Digest {
            pre: neuroshard_primitives::PreDigest {
                slot,
                author: key.public().into(),
                vrf: neuroshard_primitives::slot_lottery::sign(
                    key,
                    &neuroshard_primitives::Hash::zero(),
                    slot,
                ),
            },
            seal: neuroshard_primitives::Signature::from_raw([0; 64]),
        },
    };
    h.seal_with(key);
    h
}

#[test]
fn equivocation_proofs_slash_once_and_bad_proofs_change_nothing() {
    use sp_core::Pair as _;
    let key = neuroshard_primitives::crypto::keypair_from_uri("//Bob").unwrap();
    let bob: AccountId = key.public().into();
    let mut state = genesis();
    state
        .commit(|o| {
            balances::mint(o, &bob, 1_000)?;
            bond(o, &bob, 500)
        })
        .unwrap();
    let first = sealed(&key, 9, 4);
    let twin = {
        let mut t = first.clone();
        t.seal_with(&key);
        t
    };
    let other = neuroshard_primitives::crypto::keypair_from_uri("//Dave").unwrap();
    let mut forged = sealed(&key, 9, 5);
    forged.digest.seal = sealed(&other, 9, 5).digest.seal;
    let bad = [
        (first.clone(), first.clone()),
        (first.clone(), sealed(&key, 10, 4)),
        (first.clone(), sealed(&other, 9, 4)),
        (first.clone(), forged),
    ];
    for (a, b) in &bad {
        let mut o = Overlay::new(&state);
        assert!(matches!(
            report_equivocation(&mut o, a, b),
            Err(Error::NotEquivocation(_))
        ));
    }
    let issuance = balances::total_issuance(&state).unwrap();
    let events = state
        .commit(|o| {
            report_equivocation(o, &first, &twin)?;
            assert_eq!(
                report_equivocation(o, &twin, &first),
                Err(Error::AlreadyPunished)
            );
            Ok::<_, Error>(())
        })
        .unwrap();
    assert_eq!(balances::account(&state, &bob).unwrap().bonded, 400);
    assert_eq!(balances::total_issuance(&state).unwrap(), issuance - 100);
    assert!(events.contains(&Event::Slashed {
        who: bob,
        amount: 100,
        reason: SlashReason::Equivocation { slot: 9 },
    }));
}
