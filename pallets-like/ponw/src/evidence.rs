//! What the chain checks of a spot-check verdict's evidence
//! (`neuroshard_primitives::evidence`) before the verdict counts. The runtime holds no
//! weights: it cannot say what the right activations are. It checks what it can:
//!
//! - the worker's [`SignedStatement`] (what it handed the checker) is signed by the
//!   receipt's worker and names this receipt, so a checker can neither invent what the
//!   worker said nor replay what it said of another receipt;
//! - a statement contradicting the receipt's input or output commitment convicts the
//!   worker by its own signature ([`Finding::Convicted`]), as does a committed commitment
//!   that is malformed or covers other positions than the receipt;
//! - a checker's recomputed commitment decodes, covers the receipt's positions, and is
//!   compared with the worker's committed one (whose bytes must hash to the receipt's
//!   `commitment`) with the validators' own tolerance
//!   ([`ActivationCommitment::matches`]): a `Mismatch` whose recomputation matches, or a
//!   `Match` whose recomputation does not, is refuted by its own evidence
//!   ([`Finding::Refuted`]).
//!
//! Whether a recomputation that fails is *right* is for the quorum of independently
//! drawn checkers to decide (`crate::spot_checks`): a `Mismatch` stands only when two
//! checkers' recomputed commitments agree within the same tolerance.
//!
//! Evidence that does not check out is rejected with an [`EvidenceError`]: the call fails
//! and changes nothing (the checker keeps the assignment until its deadline, then the
//! check goes to another checker).

use neuroshard_primitives::commitment::ActivationCommitment;
use neuroshard_primitives::evidence::distance_ppm;
use neuroshard_primitives::{
    blake2_256, Hash, ReceiptBody, SignedStatement, SpotCheckEvidence, SpotCheckVerdict,
};
use thiserror::Error;

/// Why a verdict's evidence was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq, scale_info::TypeInfo)]
pub enum EvidenceError {
    #[error("a mismatch verdict needs evidence (the worker's signed statement and a recomputed commitment)")]
    Required,
    #[error("a no-answer verdict carries no evidence")]
    Unexpected,
    #[error("the worker's material statement is not signed by the receipt's worker")]
    BadStatementSignature,
    #[error("the worker's material statement is about another receipt")]
    StatementForAnotherReceipt,
    #[error("the worker's material statement agrees with the receipt: it convicts nobody")]
    StatementAgreesWithReceipt,
    #[error("a match verdict cannot rest on a statement that contradicts the receipt")]
    MatchOnDisownedMaterial,
    #[error("the committed commitment's bytes do not hash to the worker's statement")]
    ClaimedNotStated,
    #[error("the recomputed commitment is malformed or covers other positions than the receipt")]
    MalformedRecomputation,
}

/// What checked evidence shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A vote for the quorum: `recomputed` is the checker's recomputed commitment (encoded)
    /// and its distance from the worker's (millionths) for a `Mismatch` (`None` for
    /// `Match` and `NoAnswer`).
    Vote {
        verdict: SpotCheckVerdict,
        recomputed: Option<(Vec<u8>, u32)>,
    },
    /// The worker's own signed statement or commitment convicts it: no quorum needed.
    Convicted,
    /// The verdict contradicts its own evidence: the recomputed commitment is at
    /// `distance_ppm` from the worker's.
    Refuted { distance_ppm: u32 },
}

/// Checks `evidence` for `verdict` on the receipt `body` (id `id`).
pub fn check(
    body: &ReceiptBody,
    id: &Hash,
    verdict: SpotCheckVerdict,
    evidence: &SpotCheckEvidence,
) -> Result<Finding, EvidenceError> {
    use SpotCheckEvidence as E;
    use SpotCheckVerdict::{Match, Mismatch, NoAnswer};
    let vote = Finding::Vote {
        verdict,
        recomputed: None,
    };
    match (verdict, evidence) {
        (NoAnswer | Match, E::None) => Ok(vote),
        (NoAnswer, _) => Err(EvidenceError::Unexpected),
        (Mismatch, E::None) => Err(EvidenceError::Required),
        (_, E::Disowned(statement)) => {
            if stated(body, id, statement)? {
                return Err(EvidenceError::StatementAgreesWithReceipt);
            }
            match verdict {
                Mismatch => Ok(Finding::Convicted),
                _ => Err(EvidenceError::MatchOnDisownedMaterial),
            }
        }
        (_, E::Recomputed(r)) => {
            if !stated(body, id, &r.statement)? {
                return match verdict {
                    Mismatch => Ok(Finding::Convicted),
                    _ => Err(EvidenceError::MatchOnDisownedMaterial),
                };
            }
            if blake2_256(&r.claimed) != r.statement.statement.commitment {
                return Err(EvidenceError::ClaimedNotStated);
            }
            // The claimed bytes hash to the receipt's commitment (the statement agrees
            // with the receipt): a malformed one is the worker's own.
            let Some(claimed) = covering(body, &r.claimed) else {
                return match verdict {
                    Mismatch => Ok(Finding::Convicted),
                    _ => Err(EvidenceError::MatchOnDisownedMaterial),
                };
            };
            let recomputed =
                covering(body, &r.recomputed).ok_or(EvidenceError::MalformedRecomputation)?;
            let distance = claimed.distance(&recomputed).max;
            let matches = claimed.matches(&recomputed);
            match (verdict, matches) {
                (Mismatch, false) => Ok(Finding::Vote {
                    verdict,
                    recomputed: Some((r.recomputed.clone(), distance_ppm(distance))),
                }),
                (Match, true) => Ok(vote),
                _ => Ok(Finding::Refuted {
                    distance_ppm: distance_ppm(distance),
                }),
            }
        }
    }
}

/// Whether `statement` is the worker's statement about this receipt (errors when it is
/// not the worker's, or about another receipt), and agrees with the receipt's input and
/// output commitments.
fn stated(
    body: &ReceiptBody,
    id: &Hash,
    statement: &SignedStatement,
) -> Result<bool, EvidenceError> {
    if !statement.signed_by(&body.worker) {
        return Err(EvidenceError::BadStatementSignature);
    }
    let s = &statement.statement;
    if s.receipt != *id {
        return Err(EvidenceError::StatementForAnotherReceipt);
    }
    Ok(s.inputs == body.input_commitment && s.commitment == body.commitment)
}

/// `bytes` decoded as a commitment to exactly the receipt's positions.
pub fn covering(body: &ReceiptBody, bytes: &[u8]) -> Option<ActivationCommitment> {
    let c = ActivationCommitment::decode(bytes)?;
    (c.position_start == body.position_start && c.position_end == body.position_end).then_some(c)
}

/// Whether two checkers' recomputed commitments (encoded) attest the same work, within
/// the tolerance a worker's commitment is held to.
pub fn recomputations_agree(a: &[u8], b: &[u8]) -> bool {
    match (
        ActivationCommitment::decode(a),
        ActivationCommitment::decode(b),
    ) {
        (Some(a), Some(b)) => a.matches(&b),
        _ => false,
    }
}
