//! The signed extensions as the runtime applies them: a mortal extrinsic is valid from
//! its birth block for its period and never after (its birth block's hash is no longer
//! what it signed, or no longer kept), on another fork it is refused, and the tip is
//! charged with the fee and buys pool priority.

use crate::tests::{pair, transfer, Chain};
use crate::{TransactionError, Validation};
use neuroshard_primitives::{Era, Hash, SignedExtrinsic, SigningContext};

fn mortal(
    chain: &Chain,
    uri: &str,
    nonce: u64,
    period: u64,
    birth: (u64, Hash),
    tip: u128,
) -> SignedExtrinsic {
    let context = SigningContext {
        genesis: chain.runtime.genesis_hash(),
        birth: birth.1,
        era: Era::mortal(period, birth.0),
        tip,
    };
    SignedExtrinsic::sign_in(&pair(uri), &context, nonce, transfer("//Bob", 1_000))
}

fn validate(chain: &Chain, xt: &SignedExtrinsic) -> Result<u64, TransactionError> {
    chain
        .runtime
        .validate_transaction(
            &chain.state,
            &chain.head.hash(),
            xt,
            chain.head.slot() + 1,
            Validation::DryRun,
        )
        .map(|v| v.priority)
}

#[test]
fn a_mortal_extrinsic_lives_for_its_period_only() {
    let mut chain = Chain::new();
    for _ in 0..5 {
        chain.produce(vec![]);
    }
    // Signed against the head (block 5) with a period of 4: valid in blocks 6 to 8.
    let birth = (chain.head.number, chain.head.hash());
    let xt = mortal(&chain, "//Alice", 0, 4, birth, 0);
    assert_eq!(validate(&chain, &xt), Ok(0));
    chain.produce(vec![]);
    chain.produce(vec![]);
    assert_eq!(validate(&chain, &xt), Ok(0), "still in its era (block 8)");
    let (block, _, rejected) = chain.produce(vec![xt.clone()]);
    assert_eq!(
        (block.extrinsics.len(), rejected),
        (1, 0),
        "included in block 8"
    );

    // The same era signed again for nonce 1 is dead from block 9 on: in block 9 the
    // era would start at 9 itself (no hash yet), later at another block than 5.
    let late = mortal(&chain, "//Alice", 1, 4, birth, 0);
    assert_eq!(
        validate(&chain, &late),
        Err(TransactionError::AncientBirthBlock { birth: 9 })
    );
    let (block, _, rejected) = chain.produce(vec![late.clone()]);
    assert_eq!((block.extrinsics.len(), rejected), (0, 1));
    assert_eq!(validate(&chain, &late), Err(TransactionError::BadSignature));
}

#[test]
fn another_forks_birth_block_or_an_unknown_one_is_refused() {
    let mut chain = Chain::new();
    for _ in 0..3 {
        chain.produce(vec![]);
    }
    let number = chain.head.number;
    let other_fork = mortal(&chain, "//Alice", 0, 64, (number, Hash::repeat_byte(9)), 0);
    assert_eq!(
        validate(&chain, &other_fork),
        Err(TransactionError::BadSignature)
    );
    // A birth block ahead of the chain: no hash known for it.
    let ahead = mortal(
        &chain,
        "//Alice",
        0,
        64,
        (number + 10, chain.head.hash()),
        0,
    );
    assert!(
        matches!(
            validate(&chain, &ahead),
            Err(TransactionError::AncientBirthBlock { .. })
        ),
        "{:?}",
        validate(&chain, &ahead)
    );
    // An older block's hash is kept and signs fine.
    let genesis = (0, chain.runtime.genesis_hash());
    assert_eq!(
        validate(&chain, &mortal(&chain, "//Alice", 0, 64, genesis, 0)),
        Ok(0)
    );
}

#[test]
fn the_tip_is_charged_with_the_fee_and_buys_priority() {
    let mut chain = Chain::new();
    let genesis = chain.runtime.genesis_hash();
    let plain = mortal(&chain, "//Alice", 0, 64, (0, genesis), 0);
    let tipped = mortal(&chain, "//Alice", 0, 64, (0, genesis), 5_000);
    let fee = chain.runtime.fee_of(&chain.state, &plain).unwrap();
    let with_tip = chain.runtime.fee_of(&chain.state, &tipped).unwrap();
    // The tip's compact encoding is one byte longer, which the length fee counts.
    assert!(
        with_tip > fee + 5_000 && with_tip < fee * 2 + 5_000,
        "{fee} {with_tip}"
    );
    assert_eq!(validate(&chain, &plain), Ok(0));
    assert_eq!(validate(&chain, &tipped), Ok(5_000));
    let alice = chain.free("//Alice");
    chain.produce(vec![tipped]);
    assert_eq!(chain.free("//Alice"), alice - 1_000 - with_tip);
}

#[test]
fn the_zero_account_cannot_sign() {
    let chain = Chain::new();
    let mut xt = chain.sign("//Alice", 0, transfer("//Bob", 1));
    xt.signer = [0; 32].into();
    assert_eq!(validate(&chain, &xt), Err(TransactionError::ZeroSender));
}
