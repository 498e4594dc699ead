//! Tests of the evidence a spot-check verdict carries (`crate::evidence`), most of them
//! framing attempts by the drawn checker: a forged worker statement, evidence that does
//! not match the receipt, evidence replayed from another receipt and a `Mismatch` whose
//! own recomputation matches; and the quorum deciding on recomputed commitments. The
//! fixtures (the test receipts' committed commitments and honest evidence) are shared
//! with the other spot-check tests.

use crate::evidence::EvidenceError;
use crate::spot_check_tests::{checker_of, genesis_with, include_and_draw, validators};
use crate::spot_checks::{self, slashed};
use crate::tests::{apply, key, receipt};
use crate::*;
use neuroshard_primitives::commitment::{ActivationCommitment, PositionTopK};
use neuroshard_primitives::{
    AccountId, Event, EvidenceSummary, Keypair, MaterialStatement, Receipt, ReceiptBody,
    Recomputation, SignedStatement, SlashReason, SpotCheckEvidence, SpotCheckVerdict,
};
use neuroshard_support::{ReadState, StateDb};

use SpotCheckVerdict::{Match, Mismatch, NoAnswer};

/// The commitment the test receipts commit to for `positions` (`seq` varies it).
pub(crate) fn committed(positions: (u32, u32), seq: u32) -> ActivationCommitment {
    let per: Vec<PositionTopK> = (positions.0..positions.1)
        .map(|p| PositionTopK {
            norm: 10.0 + ((p + seq) % 7) as f32,
            top: vec![
                (1, 4.0),
                (2, -3.0),
                (3, 2.0 + (p % 3) as f32 * 0.1),
                (4, 1.0),
            ],
        })
        .collect();
    ActivationCommitment::from_positions(positions.0, &per)
}

/// What a checker recomputes from the worker's material when the work was not done:
/// every norm doubled (a distance of 0.5 at every position).
fn wrong(c: &ActivationCommitment) -> ActivationCommitment {
    let mut c = c.clone();
    for p in &mut c.positions {
        p.norm *= 2.0;
    }
    c
}

/// The keypair of a test account (the tests' accounts are the well-known dev keys).
fn pair_of(who: &AccountId) -> Keypair {
    [
        "//Alice",
        "//Bob",
        "//Charlie",
        "//Dave",
        "//Eve",
        "//Ferdie",
    ]
    .iter()
    .map(|u| key(u))
    .find(|(_, a)| a == who)
    .expect("a dev account")
    .0
}

/// The worker's honest statement for `body`: its own inputs and commitment.
fn statement(body: &ReceiptBody) -> SignedStatement {
    let claimed = committed((body.position_start, body.position_end), body.seq).encode();
    MaterialStatement::of(body.id(), body.input_commitment, &claimed).sign(&pair_of(&body.worker))
}

/// A re-run of `body` by a checker that recomputed `recomputed`.
fn rerun(body: &ReceiptBody, recomputed: &ActivationCommitment) -> SpotCheckEvidence {
    SpotCheckEvidence::Recomputed(Recomputation {
        statement: statement(body),
        claimed: committed((body.position_start, body.position_end), body.seq).encode(),
        recomputed: recomputed.encode(),
    })
}

/// Valid evidence for verdict `v` on the pending check `id`: a `Mismatch` recomputes
/// [`wrong`] (so two `Mismatch` verdicts agree), the others carry none.
pub(crate) fn evidence_for(
    state: &impl ReadState,
    id: &Hash,
    v: SpotCheckVerdict,
) -> SpotCheckEvidence {
    let Some(check) = spot_checks::pending(state, id).unwrap() else {
        return SpotCheckEvidence::None;
    };
    let body = &check.body;
    match v {
        Mismatch => rerun(
            body,
            &wrong(&committed(
                (body.position_start, body.position_end),
                body.seq,
            )),
        ),
        Match | NoAnswer => SpotCheckEvidence::None,
    }
}

/// A state with //Bob's receipt drawn for a check; returns it with the receipt.
fn drawn() -> (StateDb, Receipt) {
    let mut state = genesis_with(1_000_000);
    let r = receipt("//Bob", (10, 20), 0, (0, 32), 0);
    include_and_draw(&mut state, std::slice::from_ref(&r));
    (state, r)
}

fn submit(
    state: &mut StateDb,
    by: &AccountId,
    id: &Hash,
    v: SpotCheckVerdict,
    evidence: &SpotCheckEvidence,
) -> Result<Vec<Event>> {
    apply(state, |o| {
        submit_verdict(o, 9, &validators(), by, id, v, evidence)
    })
}

/// `evidence` for `v` from the drawn checker is rejected with `error` and the state is
/// exactly as it was.
fn rejected(v: SpotCheckVerdict, evidence: SpotCheckEvidence, error: EvidenceError) {
    let (mut state, r) = drawn();
    let checker = checker_of(&state, &r.id());
    let root = state.root();
    let result = submit(&mut state, &checker, &r.id(), v, &evidence);
    assert_eq!(result, Err(Error::Evidence(error)));
    assert_eq!(state.root(), root, "a rejected verdict changes nothing");
}

#[test]
fn a_mismatch_needs_evidence_and_no_answer_has_none() {
    rejected(Mismatch, SpotCheckEvidence::None, EvidenceError::Required);
    let (state, r) = drawn();
    let some = evidence_for(&state, &r.id(), Mismatch);
    rejected(NoAnswer, some, EvidenceError::Unexpected);
}

#[test]
fn a_forged_worker_statement_is_rejected() {
    let (state, r) = drawn();
    let checker = checker_of(&state, &r.id());
    let SpotCheckEvidence::Recomputed(mut forged) = evidence_for(&state, &r.id(), Mismatch) else {
        unreachable!()
    };
    // The checker signs "the worker's" statement itself.
    forged.statement = forged.statement.statement.sign(&pair_of(&checker));
    rejected(
        Mismatch,
        SpotCheckEvidence::Recomputed(forged.clone()),
        EvidenceError::BadStatementSignature,
    );
    // A made-up statement that contradicts the receipt convicts nobody either.
    let mut disowned = forged.statement.statement.clone();
    disowned.inputs = Hash::repeat_byte(0xee);
    rejected(
        Mismatch,
        SpotCheckEvidence::Disowned(disowned.sign(&pair_of(&checker))),
        EvidenceError::BadStatementSignature,
    );
}

#[test]
fn evidence_that_does_not_match_the_receipt_is_rejected() {
    let (state, r) = drawn();
    let SpotCheckEvidence::Recomputed(honest) = evidence_for(&state, &r.id(), Mismatch) else {
        unreachable!()
    };
    // Claimed bytes other than those the worker stated (and the receipt commits to).
    let mut other = honest.clone();
    other.claimed = committed((0, 32), 99).encode();
    rejected(
        Mismatch,
        SpotCheckEvidence::Recomputed(other),
        EvidenceError::ClaimedNotStated,
    );
    // A recomputation of other positions, or bytes that are no commitment.
    for bad in [wrong(&committed((0, 31), 0)).encode(), vec![2, 0, 1]] {
        let mut other = honest.clone();
        other.recomputed = bad;
        rejected(
            Mismatch,
            SpotCheckEvidence::Recomputed(other),
            EvidenceError::MalformedRecomputation,
        );
    }
    // The worker's own statement, which agrees with its receipt, convicts nobody.
    rejected(
        Mismatch,
        SpotCheckEvidence::Disowned(honest.statement),
        EvidenceError::StatementAgreesWithReceipt,
    );
}

#[test]
fn evidence_replayed_from_another_receipt_is_rejected() {
    let (mut state, r) = drawn();
    // //Bob's statement for another receipt of his (a real signature, real material).
    let other = receipt("//Bob", (10, 20), 1, (32, 64), 0);
    let SpotCheckEvidence::Recomputed(mut replayed) =
        rerun(&other.body, &wrong(&committed((32, 64), 1)))
    else {
        unreachable!()
    };
    let checker = checker_of(&state, &r.id());
    let root = state.root();
    let result = submit(
        &mut state,
        &checker,
        &r.id(),
        Mismatch,
        &SpotCheckEvidence::Recomputed(replayed.clone()),
    );
    assert_eq!(
        result,
        Err(Error::Evidence(EvidenceError::StatementForAnotherReceipt))
    );
    // With this receipt's own commitment bytes swapped in: still the other receipt's
    // statement.
    replayed.claimed = committed((0, 32), 0).encode();
    replayed.recomputed = wrong(&committed((0, 32), 0)).encode();
    let result = submit(
        &mut state,
        &checker,
        &r.id(),
        Mismatch,
        &SpotCheckEvidence::Recomputed(replayed),
    );
    assert_eq!(
        result,
        Err(Error::Evidence(EvidenceError::StatementForAnotherReceipt))
    );
    assert_eq!(state.root(), root);
}

/// Framing with real evidence: the checker's own recomputation matches the worker's
/// commitment (within the tolerance: 1% off), and it says `Mismatch`. The verdict is not
/// taken, the checker is slashed (`refuted_verdict`), the worker is untouched and the
/// check goes to another checker, whose `Match` decides.
#[test]
fn a_mismatch_refuted_by_its_own_recomputation_slashes_its_checker() {
    let (mut state, r) = drawn();
    let checker = checker_of(&state, &r.id());
    let mut close = committed((0, 32), 0);
    close.positions[5].norm *= 1.01;
    let stake_before = balances::account(&state, &checker).unwrap().bonded;
    let events = submit(
        &mut state,
        &checker,
        &r.id(),
        Mismatch,
        &rerun(&r.body, &close),
    )
    .unwrap();
    let amount = params(&state).unwrap().spot_check_slash;
    assert!(events.iter().any(|e| matches!(e,
        Event::Slashed { who, amount: a, reason: SlashReason::RefutedVerdict { receipt } }
            if *who == checker && *a == amount && *receipt == r.id())));
    assert!(events.iter().any(|e| matches!(e,
        Event::SpotCheckVerdictRefuted { checker: c, verdict: Mismatch, distance_ppm, .. }
            if *c == checker && *distance_ppm > 0 && *distance_ppm < 200_000)));
    assert_eq!(
        balances::account(&state, &checker).unwrap().bonded,
        stake_before - amount
    );
    let check = spot_checks::pending(&state, &r.id()).unwrap().unwrap();
    assert!(check.verdicts.is_empty(), "the verdict was not taken");
    assert_ne!(check.checker, checker, "another checker is drawn");
    let bob = key("//Bob").1;
    assert_eq!(slashed(&state, &bob).unwrap(), 0);
    assert_eq!(
        workers::worker(&state, &bob).unwrap().unwrap().bond,
        params(&state).unwrap().worker_bond
    );
    // A `Match` whose recomputation fails is refuted the same way (passing fraud).
    let next = check.checker.clone();
    let events = submit(
        &mut state,
        &next,
        &r.id(),
        Match,
        &rerun(&r.body, &wrong(&close)),
    )
    .unwrap();
    assert!(events.iter().any(|e| matches!(e,
        Event::SpotCheckVerdictRefuted { checker: c, verdict: Match, .. } if *c == next)));
    // An honest re-run decides.
    let last = checker_of(&state, &r.id());
    let events = submit(&mut state, &last, &r.id(), Match, &rerun(&r.body, &close)).unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SpotCheckPassed { .. })));
}

/// A worker whose signed statement contradicts its receipt (it handed over other inputs
/// than it committed to) is convicted by its own signature, on one verdict.
#[test]
fn a_worker_is_convicted_by_its_own_statement() {
    let (mut state, r) = drawn();
    let checker = checker_of(&state, &r.id());
    let mut said = statement(&r.body).statement;
    said.inputs = Hash::repeat_byte(0x11);
    let disowned = SpotCheckEvidence::Disowned(said.clone().sign(&key("//Bob").0));
    let events = submit(&mut state, &checker, &r.id(), Mismatch, &disowned).unwrap();
    assert!(events.iter().any(|e| matches!(e,
        Event::SpotCheckFailed { verdict: Mismatch, evidence: EvidenceSummary::Statement(s), slashed, .. }
            if *s == said && *slashed > 0)));
    assert!(spot_checks::pending(&state, &r.id()).unwrap().is_none());
}

/// Two `Mismatch` verdicts stand only when their recomputed commitments agree; when they
/// do not, a third checker decides, and a `Match` from it clears the worker and slashes
/// both.
#[test]
fn the_quorum_decides_on_recomputed_commitments() {
    let (mut state, r) = drawn();
    let claimed = committed((0, 32), 0);
    let first = checker_of(&state, &r.id());
    submit(
        &mut state,
        &first,
        &r.id(),
        Mismatch,
        &rerun(&r.body, &wrong(&claimed)),
    )
    .unwrap();
    // The second recomputes something else that also fails: the two do not agree.
    let mut halved = claimed.clone();
    for p in &mut halved.positions {
        p.norm *= 0.5;
    }
    let second = checker_of(&state, &r.id());
    let events = submit(
        &mut state,
        &second,
        &r.id(),
        Mismatch,
        &rerun(&r.body, &halved),
    )
    .unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::SpotCheckReassigned {
            verdict: Some(Mismatch),
            ..
        }
    )));
    let third = checker_of(&state, &r.id());
    let events = submit(
        &mut state,
        &third,
        &r.id(),
        Match,
        &rerun(&r.body, &claimed),
    )
    .unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SpotCheckPassed { .. })));
    let wrong_verdicts: Vec<&AccountId> = events
        .iter()
        .filter_map(|e| match e {
            Event::Slashed {
                who,
                reason: SlashReason::WrongVerdict { .. },
                ..
            } => Some(who),
            _ => None,
        })
        .collect();
    assert_eq!(wrong_verdicts, vec![&first, &second]);

    // Agreeing recomputations convict, and the event shows them.
    let (mut state, r) = drawn();
    for _ in 0..2 {
        let checker = checker_of(&state, &r.id());
        let evidence = rerun(&r.body, &wrong(&claimed));
        let events = submit(&mut state, &checker, &r.id(), Mismatch, &evidence).unwrap();
        if let Some(Event::SpotCheckFailed { evidence, .. }) = events
            .iter()
            .find(|e| matches!(e, Event::SpotCheckFailed { .. }))
        {
            let EvidenceSummary::Recomputed {
                recomputed,
                distance_ppm,
            } = evidence
            else {
                panic!("{evidence:?}")
            };
            assert_eq!(recomputed.len(), 2);
            assert_eq!(*distance_ppm, 500_000);
            return;
        }
    }
    panic!("two agreeing mismatches did not decide");
}
