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
    }
}

fn genesis() -> StateDb {
    let mut state = StateDb::new();
    let mut o = Overlay::new(&state);
    let bp = balances::Params {
        existential_deposit: 1,
        base_fee: 0,
        byte_fee: 0,
    };
    balances::build_genesis(&mut o, &bp, &[(who(1), 1_000), (who(2), 1_000)]).unwrap();
    let sp = Params {
        unbonding_blocks: 10,
        min_validator_bond: 100,
    };
    build_genesis(&mut o, &sp, &[(who(1), 300)]).unwrap();
    let (changes, _) = o.into_parts();
    state.apply(&changes);
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
