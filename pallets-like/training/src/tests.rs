//! Tests of gradient receipts and round closing: every rejection, the majority rule, and
//! that only receipts the accepted set names are paid (once verified); the helpers are
//! shared with the verification tests.

use super::*;
use neuroshard_ponw as ponw;
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    blake2_256, AdapterOutcome, ContributionCheck, ContributionOutcome, Event, GradientReceipt,
    GradientReceiptBody, Keypair, RoundResult, RoundVerification, UNIT,
};
use neuroshard_support::StateDb;
use sp_core::Pair as _;

pub(crate) const REWARD: Balance = 5 * UNIT;

pub(crate) fn model() -> Hash {
    blake2_256(b"model")
}

pub(crate) fn layers() -> LayerRange {
    LayerRange::new(10, 20).unwrap()
}

pub(crate) fn key(uri: &str) -> (Keypair, AccountId) {
    let pair = keypair_from_uri(uri).unwrap();
    let account = pair.public().into();
    (pair, account)
}

pub(crate) const HOLDERS: [&str; 4] = ["//Alice", "//Bob", "//Charlie", "//Dave"];

/// Genesis with the four holders serving 10-20 and //Eve serving 0-10, no collection
/// window.
pub(crate) fn genesis() -> StateDb {
    genesis_with(0)
}

pub(crate) fn genesis_with(collect_blocks: u32) -> StateDb {
    let tp = Params {
        training_reward: REWARD,
        min_contributors: 2,
        max_contributors: 4,
        collect_blocks,
        verify_blocks: 10,
        contradiction_slash: 0,
    };
    genesis_bonded(0, &tp)
}

/// Genesis with the four holders serving 10-20 and //Eve serving 0-10 (each funded and
/// bonded with `bond` when it is not zero), and training parameters `tp`.
pub(crate) fn genesis_bonded(bond: Balance, tp: &Params) -> StateDb {
    let pp = ponw::Params {
        // Spot checks are the PoNW tests' concern.
        worker_bond: bond,
        spot_check_permill: 0,
        spot_check_slash: 0,
        probe: neuroshard_ponw::ProbeParams::default(),
        capacity: neuroshard_ponw::capacity::CapacityParams {
            slash: 0,
            ..Default::default()
        },
        ..ponw::fixtures::params(ponw::fixtures::model(model(), 30))
    };
    let workers = HOLDERS
        .iter()
        .map(|h| (*h, layers()))
        .chain([("//Eve", LayerRange::new(0, 10).unwrap())]);
    let chain = workers.fold(ponw::fixtures::Genesis::new(pp), |g, (h, range)| {
        let g = if bond > 0 {
            g.fund(key(h).1, 10 * bond)
        } else {
            g
        };
        g.worker(key(h).1, vec![range])
    });
    fixtures::genesis(&chain, tp)
}

pub(crate) fn body(who: &str, round: u32, base: Hash) -> GradientReceiptBody {
    GradientReceiptBody {
        worker: key(who).1,
        model: model(),
        layers: layers(),
        round,
        base_adapter: base,
        pseudo_gradient: blake2_256(format!("{who}/{round}").as_bytes()),
        payload_bytes: 100,
        loss_before: 3_000_000,
        loss_after: 2_900_000,
    }
}

pub(crate) fn receipt(who: &str, round: u32, base: Hash) -> GradientReceipt {
    GradientReceipt::sign(body(who, round, base), &key(who).0)
}

pub(crate) fn apply(
    state: &mut StateDb,
    f: impl FnOnce(&mut Overlay<'_>) -> Result<()>,
) -> Result<Vec<Event>> {
    state.commit(f)
}

/// Block the submissions and reports of the windowless tests land in.
pub(crate) const NOW: BlockNumber = 7;

pub(crate) fn submit(state: &mut StateDb, r: &GradientReceipt) -> Result<Vec<Event>> {
    submit_at(state, NOW, r)
}

pub(crate) fn submit_at(
    state: &mut StateDb,
    now: BlockNumber,
    r: &GradientReceipt,
) -> Result<Vec<Event>> {
    apply(state, |o| submit_gradient_receipt(o, now, r))
}

pub(crate) fn report(state: &mut StateDb, who: &str, r: &RoundResult) -> Result<Vec<Event>> {
    report_at(state, NOW, who, r)
}

pub(crate) fn report_at(
    state: &mut StateDb,
    now: BlockNumber,
    who: &str,
    r: &RoundResult,
) -> Result<Vec<Event>> {
    let validators = [(key(VERIFIER).1, 1)];
    let verifiers = Verifiers {
        validators: &validators,
        randomness: Hash::zero(),
    };
    apply(state, |o| {
        report_round_result(o, now, &key(who).1, r, &verifiers)
    })
}

/// The only validator (so the verifier of every round): not a holder.
pub(crate) const VERIFIER: &str = "//Ferdie";

/// `who` submits `outcomes` (one per recorded receipt, in order) for `round` and the
/// adapter verdict `adapter`.
pub(crate) fn verify_as(
    state: &mut StateDb,
    now: BlockNumber,
    who: &str,
    round: u32,
    outcomes: &[ContributionOutcome],
    adapter: AdapterOutcome,
) -> Result<Vec<Event>> {
    let records = receipts(state, &(model(), layers(), round))?;
    let checks = records
        .iter()
        .zip(outcomes)
        .map(|(r, o)| ContributionCheck {
            worker: r.worker.clone(),
            outcome: *o,
            loss_before: r.loss_before,
            loss_after: r.loss_after,
        })
        .collect();
    let v = RoundVerification {
        model: model(),
        layers: layers(),
        round,
        checks,
        adapter,
        held_out_before: 3_000_000,
        held_out_after: 2_900_000,
    };
    let validators = [key(VERIFIER).1];
    apply(state, |o| {
        submit_round_verification(o, now, &validators, &key(who).1, &v)
    })
}

/// The verifier finds every receipt of `round` improving and adopts its adapter.
pub(crate) fn verify_improved(state: &mut StateDb, round: u32) {
    let n = receipts(state, &(model(), layers(), round)).unwrap().len();
    let all = vec![ContributionOutcome::Improved; n];
    verify_as(state, NOW, VERIFIER, round, &all, AdapterOutcome::Adopted).unwrap();
}

pub(crate) fn result(round: u32, accepted: &[&GradientReceipt], adapter: &[u8]) -> RoundResult {
    let mut accepted: Vec<Hash> = accepted.iter().map(|r| r.body.pseudo_gradient).collect();
    accepted.sort();
    RoundResult {
        model: model(),
        layers: layers(),
        round,
        accepted,
        adapter: blake2_256(adapter),
    }
}

pub(crate) fn free(state: &StateDb, who: &str) -> Balance {
    balances::account(state, &key(who).1).unwrap().free
}

#[test]
fn majority_closes_the_round_and_pays_only_accepted_receipts() {
    let mut s = genesis();
    let rs: Vec<GradientReceipt> = HOLDERS
        .iter()
        .map(|h| receipt(h, 0, Hash::zero()))
        .collect();
    for r in &rs {
        submit(&mut s, r).unwrap();
    }
    // Charlie's pseudo-gradient was poisoned: the honest aggregate leaves it out.
    let honest = result(0, &[&rs[0], &rs[1], &rs[3]], b"v1");
    let forged = result(0, &[&rs[0], &rs[1], &rs[2], &rs[3]], b"evil");
    report(&mut s, "//Charlie", &forged).unwrap();
    report(&mut s, "//Alice", &honest).unwrap();
    report(&mut s, "//Bob", &honest).unwrap();
    // Two of four agree: not a strict majority yet, nothing paid.
    assert_eq!(free(&s, "//Alice"), 0);
    assert_eq!(shard(&s, model(), layers()).unwrap().round, 0);
    let events = report(&mut s, "//Dave", &honest).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TrainingRoundFinalized {
            round: 0,
            accepted: 3,
            rejected: 1,
            ..
        }
    )));
    // Closed, but nothing is paid before the round is verified.
    assert_eq!(free(&s, "//Alice"), 0);
    verify_improved(&mut s, 0);
    // The round's reward is split among the three accepted receipts.
    for h in ["//Alice", "//Bob", "//Dave"] {
        assert_eq!(free(&s, h), REWARD / 3, "{h}");
        assert_eq!(earned(&s, &key(h).1).unwrap(), REWARD / 3);
    }
    assert_eq!(free(&s, "//Charlie"), 0);
    assert_eq!(earned(&s, &key("//Charlie").1).unwrap(), 0);
    let state = shard(&s, model(), layers()).unwrap();
    assert_eq!(state.round, 1);
    assert_eq!(state.adapter, Some(blake2_256(b"v1")));
    let closed = closed_round(&s, &(model(), layers(), 0)).unwrap().unwrap();
    assert_eq!(closed.adapter, blake2_256(b"v1"));
    let recs = receipts(&s, &(model(), layers(), 0)).unwrap();
    let flags: Vec<_> = recs.iter().map(|r| r.accepted).collect();
    assert_eq!(flags, vec![Some(true), Some(true), Some(false), Some(true)]);
    // The round is closed: a contributor's late report changes nothing, anyone else's
    // report and late receipts are refused.
    let before = s.root();
    assert_eq!(report(&mut s, "//Dave", &honest), Ok(vec![]));
    assert_eq!(s.root(), before);
    assert_eq!(
        report(&mut s, "//Eve", &honest),
        Err(Error::WrongRound {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        submit(&mut s, &receipt("//Dave", 0, Hash::zero())),
        Err(Error::WrongRound {
            expected: 1,
            got: 0
        })
    );
    // Round 1 must start from the recorded adapter version.
    assert_eq!(
        submit(&mut s, &receipt("//Alice", 1, blake2_256(b"v0"))),
        Err(Error::WrongBaseAdapter {
            expected: blake2_256(b"v1"),
            got: blake2_256(b"v0")
        })
    );
    submit(&mut s, &receipt("//Alice", 1, blake2_256(b"v1"))).unwrap();
}

#[test]
fn receipts_are_checked() {
    let mut s = genesis();
    let mut forged = receipt("//Alice", 0, Hash::zero());
    forged.body.loss_after = 1;
    assert_eq!(submit(&mut s, &forged), Err(Error::BadSignature));
    let mut b = body("//Alice", 0, Hash::zero());
    b.model = blake2_256(b"other");
    let wrong_model = GradientReceipt::sign(b, &key("//Alice").0);
    assert_eq!(
        submit(&mut s, &wrong_model),
        Err(Error::WrongModel(blake2_256(b"other")))
    );
    // //Eve serves 0-10, not 10-20; //Ferdie is no worker at all.
    for who in ["//Eve", "//Ferdie"] {
        assert_eq!(
            submit(&mut s, &receipt(who, 0, Hash::zero())),
            Err(Error::NotAHolder(layers()))
        );
    }
    assert_eq!(
        submit(&mut s, &receipt("//Alice", 1, Hash::zero())),
        Err(Error::WrongRound {
            expected: 0,
            got: 1
        })
    );
    submit(&mut s, &receipt("//Alice", 0, Hash::zero())).unwrap();
    assert_eq!(
        submit(&mut s, &receipt("//Alice", 0, Hash::zero())),
        Err(Error::DuplicateReceipt)
    );
}

#[test]
fn reports_are_checked() {
    let mut s = genesis();
    let ra = receipt("//Alice", 0, Hash::zero());
    let rb = receipt("//Bob", 0, Hash::zero());
    submit(&mut s, &ra).unwrap();
    submit(&mut s, &rb).unwrap();
    let good = result(0, &[&ra, &rb], b"v1");
    assert_eq!(report(&mut s, "//Dave", &good), Err(Error::NotAContributor));
    let mut empty = good.clone();
    empty.accepted.clear();
    assert_eq!(
        report(&mut s, "//Alice", &empty),
        Err(Error::BadAcceptedSet)
    );
    let mut unsorted = good.clone();
    unsorted.accepted.reverse();
    assert_eq!(
        report(&mut s, "//Alice", &unsorted),
        Err(Error::BadAcceptedSet)
    );
    let mut unknown = good.clone();
    unknown.accepted = vec![blake2_256(b"nobody")];
    assert_eq!(
        report(&mut s, "//Alice", &unknown),
        Err(Error::UnknownGradient(blake2_256(b"nobody")))
    );
    // One vote of two contributors is not a majority; voting twice is refused.
    report(&mut s, "//Alice", &good).unwrap();
    assert_eq!(
        report(&mut s, "//Alice", &good),
        Err(Error::AlreadyReported)
    );
    report(&mut s, "//Bob", &good).unwrap();
    verify_improved(&mut s, 0);
    assert_eq!(free(&s, "//Alice"), REWARD / 2);
    assert_eq!(free(&s, "//Bob"), REWARD / 2);
}

#[test]
fn a_lone_contributor_cannot_close_a_round() {
    // min_contributors = 2: one holder's report is a majority of one but not enough.
    let mut s = genesis();
    let ra = receipt("//Alice", 0, Hash::zero());
    submit(&mut s, &ra).unwrap();
    report(&mut s, "//Alice", &result(0, &[&ra], b"v1")).unwrap();
    assert_eq!(shard(&s, model(), layers()).unwrap().round, 0);
    assert_eq!(free(&s, "//Alice"), 0);
}

#[test]
fn rounds_are_capped() {
    let mut s = genesis();
    for h in HOLDERS {
        submit(&mut s, &receipt(h, 0, Hash::zero())).unwrap();
    }
    // A fifth holder of the shard (max_contributors = 4).
    apply(&mut s, |o| {
        ponw::register_worker(o, 1, &key("//Ferdie").1, model(), vec![layers()])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        submit(&mut s, &receipt("//Ferdie", 0, Hash::zero())),
        Err(Error::RoundFull(4))
    );
}

#[test]
fn the_collection_window_fixes_the_set_every_holder_aggregates() {
    // Window of 3 blocks from the first receipt (block 10): receipts up to block 13.
    let mut s = genesis_with(3);
    let (ra, rb, rc) = (
        receipt("//Alice", 0, Hash::zero()),
        receipt("//Bob", 0, Hash::zero()),
        receipt("//Charlie", 0, Hash::zero()),
    );
    let good = result(0, &[&ra, &rb], b"v1");
    assert_eq!(
        report_at(&mut s, 9, "//Alice", &good),
        Err(Error::CollectionOpen {
            round: 0,
            until: None
        }),
        "no receipt yet"
    );
    submit_at(&mut s, 10, &ra).unwrap();
    assert_eq!(shard(&s, model(), layers()).unwrap().opened_at, Some(10));
    submit_at(&mut s, 13, &rb).unwrap();
    assert_eq!(
        submit_at(&mut s, 14, &rc),
        Err(Error::CollectionClosed {
            round: 0,
            until: 13
        })
    );
    assert_eq!(
        report_at(&mut s, 13, "//Alice", &good),
        Err(Error::CollectionOpen {
            round: 0,
            until: Some(13)
        })
    );
    report_at(&mut s, 14, "//Alice", &good).unwrap();
    report_at(&mut s, 15, "//Bob", &good).unwrap();
    let next = shard(&s, model(), layers()).unwrap();
    assert_eq!((next.round, next.opened_at), (1, None));
    // The next round opens with its own first receipt.
    submit_at(&mut s, 40, &receipt("//Charlie", 1, blake2_256(b"v1"))).unwrap();
    assert_eq!(shard(&s, model(), layers()).unwrap().opened_at, Some(40));
}

#[test]
fn a_round_that_does_not_close_in_time_starts_over() {
    // Window of 3 blocks from block 10 (receipts until 13, reports until 16).
    let mut s = genesis_with(3);
    let (ra, rb) = (
        receipt("//Alice", 0, Hash::zero()),
        receipt("//Bob", 0, Hash::zero()),
    );
    submit_at(&mut s, 10, &ra).unwrap();
    submit_at(&mut s, 12, &rb).unwrap();
    // The holders disagree: no majority by block 16.
    report_at(&mut s, 14, "//Alice", &result(0, &[&ra, &rb], b"v1")).unwrap();
    report_at(&mut s, 15, "//Bob", &result(0, &[&ra], b"v2")).unwrap();
    assert_eq!(shard(&s, model(), layers()).unwrap().round, 0);
    // Past the reporting period, reports are refused and the next receipt restarts it.
    assert_eq!(
        report_at(&mut s, 17, "//Alice", &result(0, &[&ra, &rb], b"v1")),
        Err(Error::CollectionClosed {
            round: 0,
            until: 13
        })
    );
    let events = submit_at(&mut s, 17, &receipt("//Charlie", 0, Hash::zero())).unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TrainingRoundRestarted {
            round: 0,
            dropped: 2,
            ..
        }
    )));
    let recs = receipts(&s, &(model(), layers(), 0)).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(shard(&s, model(), layers()).unwrap().opened_at, Some(17));
    // Alice and Bob contribute again to the new attempt, which closes normally.
    submit_at(&mut s, 18, &ra).unwrap();
    submit_at(&mut s, 19, &rb).unwrap();
    let agreed = result(0, &[&ra, &rb], b"v1");
    report_at(&mut s, 21, "//Alice", &agreed).unwrap();
    report_at(&mut s, 21, "//Bob", &agreed).unwrap();
    assert_eq!(shard(&s, model(), layers()).unwrap().round, 1);
    verify_improved(&mut s, 0);
    assert_eq!(free(&s, "//Alice"), REWARD / 2);
    assert_eq!(
        free(&s, "//Charlie"),
        0,
        "its receipt was not in the accepted set"
    );
}
