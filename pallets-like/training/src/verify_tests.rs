//! Attacks on Proof of Training at the pallet (issue 22) and the verification that
//! defeats them: rounds only for canonical ranges, one budget per round however many
//! accounts contribute, nothing paid or adopted before a validator verified the round,
//! made-up or copied pseudo-gradients unpaid, contradicted losses slashed.

use crate::tests::*;
use crate::*;
use neuroshard_ponw as ponw;
use neuroshard_primitives::{
    blake2_256, AdapterOutcome, ContributionOutcome as O, Event, GradientReceipt,
};

/// Attack (issue 22): a holder of 10-20 opens rounds for sub-ranges of its choosing
/// (10-11, 12-20, ...), each a round key of its own that a partner and it could close
/// with made-up hashes. Rounds exist only for the chain's canonical ranges: such
/// receipts are refused and change nothing.
#[test]
fn a_holder_cannot_open_rounds_for_ranges_of_its_choosing() {
    let mut s = genesis();
    for (start, end) in [(10, 11), (12, 20), (10, 19), (15, 16)] {
        let mut b = body("//Alice", 0, Hash::zero());
        b.layers = LayerRange::new(start, end).unwrap();
        let r = GradientReceipt::sign(b, &key("//Alice").0);
        let before = s.root();
        assert_eq!(
            submit(&mut s, &r),
            Err(Error::NotACanonicalRange(r.body.layers))
        );
        assert_eq!(s.root(), before);
    }
    submit(&mut s, &receipt("//Alice", 0, Hash::zero())).unwrap();
}

/// Attack (issue 22): more accounts, more reward. However many accepted contributors a
/// round has, it mints its `training_reward` once, split among them.
#[test]
fn more_accounts_do_not_mint_more() {
    let minted_with = |contributors: &[&str]| {
        let mut s = genesis();
        let rs: Vec<GradientReceipt> = contributors
            .iter()
            .map(|h| receipt(h, 0, Hash::zero()))
            .collect();
        for r in &rs {
            submit(&mut s, r).unwrap();
        }
        let all: Vec<&GradientReceipt> = rs.iter().collect();
        let agreed = result(0, &all, b"v1");
        for h in contributors {
            report(&mut s, h, &agreed).unwrap();
        }
        assert_eq!(shard(&s, model(), layers()).unwrap().round, 1);
        verify_improved(&mut s, 0);
        contributors.iter().map(|h| free(&s, h)).sum::<Balance>()
    };
    let two = minted_with(&["//Alice", "//Bob"]);
    let four = minted_with(&HOLDERS);
    assert_eq!(two, REWARD);
    assert!(four <= REWARD && four > REWARD - 4, "{four}");
}

/// Two accounts (or one person's two keys) that both report the same result for the
/// receipts they made up close the round: a majority of its contributors agree.
fn fakers_close_round_0(s: &mut neuroshard_support::StateDb) {
    let (ra, rb) = (
        receipt("//Alice", 0, Hash::zero()),
        receipt("//Bob", 0, Hash::zero()),
    );
    submit(s, &ra).unwrap();
    submit(s, &rb).unwrap();
    let claimed = result(0, &[&ra, &rb], b"a version nobody has");
    report(s, "//Alice", &claimed).unwrap();
    report(s, "//Bob", &claimed).unwrap();
    assert_eq!(shard(s, model(), layers()).unwrap().round, 1);
}

/// Attack (issue 22): made-up pseudo-gradient hashes, agreed on by their two authors.
/// Before verification existed, closing the round minted its whole reward to them
/// (`REWARD`, 5 NSHD, for two transactions' fees). Now the round waits for its drawn
/// verifier, who cannot fetch either payload nor the adapter's snapshot: nothing is
/// minted and serving nodes keep the base model.
#[test]
fn made_up_gradients_close_a_round_but_earn_nothing() {
    let mut s = genesis();
    fakers_close_round_0(&mut s);
    assert_eq!(
        free(&s, "//Alice") + free(&s, "//Bob"),
        0,
        "paid unverified"
    );
    assert_eq!(awaiting(&s).unwrap()[0].verifier, key(VERIFIER).1);
    let events = verify_as(
        &mut s,
        NOW,
        VERIFIER,
        0,
        &[O::Unavailable, O::Unavailable],
        AdapterOutcome::Unavailable,
    )
    .unwrap();
    assert_eq!(free(&s, "//Alice") + free(&s, "//Bob"), 0);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::TrainingRewardPaid { .. })));
    assert_eq!(adopted(&s, model(), layers()).unwrap(), None);
    let recs = receipts(&s, &(model(), layers(), 0)).unwrap();
    assert!(recs.iter().all(|r| r.verified == Some(O::Unavailable)));
    assert!(awaiting(&s).unwrap().is_empty());
}

#[test]
fn only_the_drawn_verifier_decides_until_the_verification_is_overdue() {
    let mut s = genesis();
    fakers_close_round_0(&mut s);
    let both = [O::Improved, O::Improved];
    // A contributor cannot verify its own round, nor can anyone but a validator later.
    for now in [NOW, NOW + 11] {
        assert_eq!(
            verify_as(&mut s, now, "//Alice", 0, &both, AdapterOutcome::Adopted),
            Err(Error::NotTheVerifier)
        );
    }
    assert_eq!(
        verify_as(
            &mut s,
            NOW,
            VERIFIER,
            0,
            &both[..1],
            AdapterOutcome::Adopted
        ),
        Err(Error::BadVerification)
    );
    assert_eq!(
        verify_as(&mut s, NOW, VERIFIER, 1, &[], AdapterOutcome::Adopted),
        Err(Error::NotAwaitingVerification)
    );
    verify_as(&mut s, NOW, VERIFIER, 0, &both, AdapterOutcome::Adopted).unwrap();
    assert_eq!(
        verify_as(&mut s, NOW, VERIFIER, 0, &both, AdapterOutcome::Adopted),
        Err(Error::NotAwaitingVerification)
    );
    assert_eq!(free(&s, "//Alice"), REWARD / 2);
}

/// A copier that resubmits another holder's pseudo-gradient hash (to share in its
/// reward) is refused; a near-copy under another hash is the verifier's to find.
#[test]
fn a_copied_pseudo_gradient_hash_is_refused() {
    let mut s = genesis();
    let ra = receipt("//Alice", 0, Hash::zero());
    submit(&mut s, &ra).unwrap();
    let mut b = body("//Bob", 0, Hash::zero());
    b.pseudo_gradient = ra.body.pseudo_gradient;
    let copy = GradientReceipt::sign(b, &key("//Bob").0);
    assert_eq!(
        submit(&mut s, &copy),
        Err(Error::DuplicateGradient(ra.body.pseudo_gradient))
    );
}

/// Genesis where the holders have bonds of 10 NSHD and a contradicted claim costs 4.
fn bonded_genesis() -> neuroshard_support::StateDb {
    let tp = Params {
        contradiction_slash: 4 * neuroshard_primitives::UNIT,
        ..fixtures::params()
    };
    genesis_bonded(10 * neuroshard_primitives::UNIT, &tp)
}

/// Only receipts the aggregate accepted *and* the verifier found improving share the
/// round's reward; a contradicted claim is slashed; an adapter that is worse on held-out
/// text is not adopted, an adopted one stays until a newer one is.
#[test]
fn verification_decides_pay_slashes_and_adoption() {
    let mut s = bonded_genesis();
    let rs: Vec<GradientReceipt> = HOLDERS[..3]
        .iter()
        .map(|h| receipt(h, 0, Hash::zero()))
        .collect();
    for r in &rs {
        submit(&mut s, r).unwrap();
    }
    let agreed = result(0, &[&rs[0], &rs[1], &rs[2]], b"v1");
    for h in &HOLDERS[..3] {
        report(&mut s, h, &agreed).unwrap();
    }
    let free0 = free(&s, "//Alice");
    let outcomes = [O::Improved, O::NoImprovement, O::Contradicted];
    let events = verify_as(&mut s, NOW, VERIFIER, 0, &outcomes, AdapterOutcome::Adopted).unwrap();
    assert_eq!(
        free(&s, "//Alice") - free0,
        REWARD,
        "the only verified contributor"
    );
    assert_eq!(earned(&s, &key("//Bob").1).unwrap(), 0);
    assert_eq!(earned(&s, &key("//Charlie").1).unwrap(), 0);
    assert_eq!(
        ponw::spot_checks::slashed(&s, &key("//Charlie").1).unwrap(),
        4 * neuroshard_primitives::UNIT
    );
    assert!(events.iter().any(|e| matches!(e, Event::Slashed { .. })));
    assert_eq!(
        adopted(&s, model(), layers()).unwrap(),
        Some(blake2_256(b"v1"))
    );
    // Round 1's adapter raises the held-out loss: the chain trains on from it, serving
    // nodes stay on v1.
    let r1: Vec<GradientReceipt> = HOLDERS[..2]
        .iter()
        .map(|h| receipt(h, 1, blake2_256(b"v1")))
        .collect();
    for r in &r1 {
        submit(&mut s, r).unwrap();
    }
    let poisoned = result(1, &[&r1[0], &r1[1]], b"v2");
    report(&mut s, "//Alice", &poisoned).unwrap();
    report(&mut s, "//Bob", &poisoned).unwrap();
    let both = [O::Improved, O::Improved];
    verify_as(&mut s, NOW, VERIFIER, 1, &both, AdapterOutcome::Worse).unwrap();
    assert_eq!(
        shard(&s, model(), layers()).unwrap().adapter,
        Some(blake2_256(b"v2"))
    );
    assert_eq!(
        adopted(&s, model(), layers()).unwrap(),
        Some(blake2_256(b"v1"))
    );
}
