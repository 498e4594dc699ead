//! Unit and property tests of the balances pallet.

use super::*;
use neuroshard_support::StateDb;
use proptest::prelude::*;

fn who(n: u8) -> AccountId {
    AccountId::from([n; 32])
}

fn params() -> Params {
    Params {
        existential_deposit: 10,
        base_fee: 5,
        byte_fee: 1,
    }
}

fn genesis() -> StateDb {
    let mut state = StateDb::new();
    state
        .commit(|o| build_genesis(o, &params(), &[(who(1), 1_000), (who(2), 500)]))
        .unwrap();
    state
}

#[test]
fn transfer_moves_exact_amount() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    transfer(&mut o, &who(1), &who(3), 300).unwrap();
    assert_eq!(account(&o, &who(1)).unwrap().free, 700);
    assert_eq!(account(&o, &who(3)).unwrap().free, 300);
    assert_eq!(total_issuance(&o).unwrap(), 1_500);
}

#[test]
fn failures_change_nothing() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    let before = o.scan_prefix(&[]);
    let err = o
        .transactional(|o| transfer(o, &who(1), &who(2), 5_000))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InsufficientBalance {
            needed: 5_000,
            available: 1_000
        }
    ));
    assert_eq!(
        o.transactional(|o| transfer(o, &who(1), &who(9), 3)),
        Err(Error::BelowExistentialDeposit {
            amount: 3,
            minimum: 10
        })
    );
    assert_eq!(
        o.transactional(|o| transfer(o, &who(1), &who(1), 3)),
        Err(Error::SelfTransfer)
    );
    assert_eq!(
        o.transactional(|o| transfer(o, &who(1), &who(2), 0)),
        Err(Error::ZeroAmount)
    );
    assert_eq!(o.scan_prefix(&[]), before);
    assert!(o.events().is_empty());
}

/// Substrate's existence rules: a keep-alive transfer may not leave the sender below
/// the existential deposit; an allow-death one reaps it, burning the dust
/// (`DustLost`) and keeping its nonce (no replay of its old extrinsics).
#[test]
fn keep_alive_refuses_what_allow_death_reaps() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    increment_nonce(&mut o, &who(2)).unwrap();
    // 500 - 495 leaves 5, half the existential deposit of 10.
    assert_eq!(
        o.transactional(|o| transfer_with(o, &who(2), &who(1), 495, Existence::KeepAlive)),
        Err(Error::Expendability {
            amount: 495,
            minimum: 10
        })
    );
    // Leaving exactly the deposit is fine either way.
    transfer_with(&mut o, &who(2), &who(1), 490, Existence::KeepAlive).unwrap();
    assert_eq!(account(&o, &who(2)).unwrap().free, 10);
    assert!(!o
        .events()
        .iter()
        .any(|e| matches!(e, Event::DustLost { .. })));
    transfer_with(&mut o, &who(2), &who(1), 4, Existence::AllowDeath).unwrap();
    let reaped = account(&o, &who(2)).unwrap();
    assert_eq!((reaped.free, reaped.nonce), (0, 1));
    assert_eq!(account(&o, &who(1)).unwrap().free, 1_000 + 490 + 4);
    assert_eq!(total_issuance(&o).unwrap(), 1_500 - 6);
    assert_eq!(
        o.events().last(),
        Some(&Event::DustLost {
            account: who(2),
            amount: 6
        })
    );
}

#[test]
fn fee_is_burned() {
    let state = genesis();
    let mut o = Overlay::new(&state);
    let f = fee(&params(), 100);
    assert_eq!(f, 105);
    charge_fee(&mut o, &who(2), f).unwrap();
    assert_eq!(account(&o, &who(2)).unwrap().free, 395);
    assert_eq!(total_issuance(&o).unwrap(), 1_500 - 105);
}

#[derive(Debug, Clone)]
enum Op {
    Transfer(u8, u8, u128),
    KeepAlive(u8, u8, u128),
    Mint(u8, u128),
    Burn(u8, u128),
    Bond(u8, u128),
    Unbond(u8, u128),
    Unreserve(u8, u128),
    Reserve(u8, u128),
    PayReserved(u8, u8, u128, u128),
}

fn op() -> impl Strategy<Value = Op> {
    let acc = 1u8..5;
    let amt = 0u128..2_000;
    prop_oneof![
        (acc.clone(), acc.clone(), amt.clone()).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
        (acc.clone(), acc.clone(), amt.clone()).prop_map(|(a, b, x)| Op::KeepAlive(a, b, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Mint(a, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Burn(a, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Bond(a, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Unbond(a, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Unreserve(a, x)),
        (acc.clone(), amt.clone()).prop_map(|(a, x)| Op::Reserve(a, x)),
        (acc.clone(), acc, amt.clone(), amt).prop_map(|(a, b, x, y)| Op::PayReserved(a, b, x, y)),
    ]
}

proptest! {
    /// Whatever sequence of operations runs (failing ones rolled back), the sum of all
    /// accounts' totals equals the tracked total issuance.
    #[test]
    fn issuance_always_matches_accounts(ops in proptest::collection::vec(op(), 1..60)) {
        let state = genesis();
        let mut o = Overlay::new(&state);
        for op in ops {
            let _ = o.transactional(|o| match op {
                Op::Transfer(a, b, x) => transfer(o, &who(a), &who(b), x),
                Op::KeepAlive(a, b, x) => {
                    transfer_with(o, &who(a), &who(b), x, Existence::KeepAlive)
                }
                Op::Mint(a, x) => mint(o, &who(a), x),
                Op::Burn(a, x) => burn(o, &who(a), x),
                Op::Bond(a, x) => bond(o, &who(a), x),
                Op::Unbond(a, x) => unbond_to_reserved(o, &who(a), x),
                Op::Unreserve(a, x) => unreserve(o, &who(a), x),
                Op::Reserve(a, x) => reserve(o, &who(a), x),
                Op::PayReserved(a, b, x, y) => pay_from_reserved(o, &who(a), &who(b), x, y),
            });
        }
        let sum: u128 = ACCOUNTS.entries(&o).unwrap().iter().map(|(_, d)| AccountData::from(d).total()).sum();
        prop_assert_eq!(sum, total_issuance(&o).unwrap());
    }
}
