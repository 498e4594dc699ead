//! From a worker's signed material and the checker's re-run to a verdict and the
//! evidence the chain checks (`ponw::evidence`). Every `Mismatch` carries evidence the
//! chain can verify or it is not given:
//!
//! - the worker's statement contradicts its receipt (other inputs or commitment than it
//!   committed to): `Mismatch` with the statement alone (`Disowned`);
//! - the committed commitment is malformed or covers other positions: `Mismatch` with the
//!   statement and the commitment (the chain convicts on the worker's own bytes);
//! - the re-run: `Match` or `Mismatch` with the statement, the worker's commitment and
//!   the recomputed one, compared as the chain compares them;
//! - inputs the layers refuse to run (wrong width, token ids out of range): the chain
//!   cannot check that without the model, so the verdict is `NoAnswer` (the worker
//!   handed over nothing the work can be checked on): its income is forfeited, its
//!   bond is not touched.

use neuroshard_inference::commitment::ActivationCommitment;
use neuroshard_primitives::{ReceiptBody, Recomputation, SpotCheckEvidence, SpotCheckVerdict};
use neuroshard_serving::protocol::SignedMaterial;

/// A verdict, its evidence and, for logs, why.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub verdict: SpotCheckVerdict,
    pub evidence: SpotCheckEvidence,
    pub why: String,
}

/// The verdict on `body` from the worker's `signed` material and the checker's re-run
/// (`rerun`: the worker's decoded commitment and the recomputed one, or why the material
/// could not be re-run).
pub fn verdict_of(
    body: &ReceiptBody,
    signed: &SignedMaterial,
    rerun: Result<(ActivationCommitment, ActivationCommitment), String>,
) -> Verdict {
    let said = &signed.statement.statement;
    if said.inputs != body.input_commitment || said.commitment != body.commitment {
        return Verdict {
            verdict: SpotCheckVerdict::Mismatch,
            evidence: SpotCheckEvidence::Disowned(signed.statement.clone()),
            why: "the worker's material is not what its receipt commits to".into(),
        };
    }
    let recomputation = |recomputed: Vec<u8>| {
        SpotCheckEvidence::Recomputed(Recomputation {
            statement: signed.statement.clone(),
            claimed: signed.material.commitment.clone(),
            recomputed,
        })
    };
    let claimed_ok = ActivationCommitment::decode(&signed.material.commitment).is_some_and(|c| {
        c.position_start == body.position_start && c.position_end == body.position_end
    });
    if !claimed_ok {
        return Verdict {
            verdict: SpotCheckVerdict::Mismatch,
            evidence: recomputation(Vec::new()),
            why: "the worker's commitment is malformed or covers other positions".into(),
        };
    }
    match rerun {
        Ok((claimed, recomputed)) => {
            let matches = claimed.matches(&recomputed);
            let distance = claimed.distance(&recomputed).max;
            Verdict {
                verdict: if matches {
                    SpotCheckVerdict::Match
                } else {
                    SpotCheckVerdict::Mismatch
                },
                evidence: recomputation(recomputed.encode()),
                why: format!("recomputed at distance {distance:.3}"),
            }
        }
        Err(why) => Verdict {
            verdict: SpotCheckVerdict::NoAnswer,
            evidence: SpotCheckEvidence::None,
            why: format!("the material cannot be re-run: {why}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_inference::commitment::PositionTopK;
    use neuroshard_inference::spot_check::{InputLog, SpotCheckMaterial};
    use neuroshard_primitives::crypto::keypair_from_uri;
    use neuroshard_primitives::{blake2_256, Hash, LayerRange};
    use sp_core::Pair as _;

    fn commitment(scale: f32) -> ActivationCommitment {
        let per: Vec<PositionTopK> = (0..4)
            .map(|p| PositionTopK {
                norm: scale * (5.0 + p as f32),
                top: vec![
                    (0, 3.0 * scale),
                    (1, 2.0 * scale),
                    (2, 1.0 * scale),
                    (3, 0.5 * scale),
                ],
            })
            .collect();
        ActivationCommitment::from_positions(0, &per)
    }

    /// A receipt of //Bob for the material he hands over, signed.
    fn signed() -> (ReceiptBody, SignedMaterial) {
        let bob = keypair_from_uri("//Bob").unwrap();
        let material = SpotCheckMaterial {
            inputs: InputLog::Tokens(vec![1, 2, 3, 4]),
            commitment: commitment(1.0).encode(),
        };
        let body = ReceiptBody {
            worker: bob.public().into(),
            client: keypair_from_uri("//Dave").unwrap().public().into(),
            model: Hash::repeat_byte(1),
            layers: LayerRange::new(0, 10).unwrap(),
            session: [0; 16],
            epoch: 0,
            seq: 0,
            position_start: 0,
            position_end: 4,
            commitment: blake2_256(&material.commitment),
            input_commitment: material.inputs.digest(4).unwrap(),
            adapter: None,
        };
        let signed = SignedMaterial::sign(body.id(), material, &bob);
        assert!(signed.is_signed_by(body.id(), &body.worker));
        (body, signed)
    }

    #[test]
    fn verdicts_carry_the_evidence_the_chain_checks() {
        let (body, signed) = signed();
        let honest = verdict_of(&body, &signed, Ok((commitment(1.0), commitment(1.01))));
        assert_eq!(honest.verdict, SpotCheckVerdict::Match);
        assert!(matches!(honest.evidence, SpotCheckEvidence::Recomputed(_)));
        let cheat = verdict_of(&body, &signed, Ok((commitment(1.0), commitment(2.0))));
        assert_eq!(cheat.verdict, SpotCheckVerdict::Mismatch);
        let SpotCheckEvidence::Recomputed(r) = cheat.evidence else {
            panic!("{cheat:?}")
        };
        assert_eq!(r.recomputed, commitment(2.0).encode());
        assert_eq!(r.claimed, signed.material.commitment);
        let refused = verdict_of(&body, &signed, Err("inputs refused".into()));
        assert_eq!(
            (refused.verdict, refused.evidence),
            (SpotCheckVerdict::NoAnswer, SpotCheckEvidence::None)
        );
    }

    #[test]
    fn material_that_is_not_the_receipts_convicts_on_the_statement() {
        let (mut body, signed) = signed();
        body.input_commitment = Hash::repeat_byte(9);
        let v = verdict_of(&body, &signed, Ok((commitment(1.0), commitment(1.0))));
        assert_eq!(v.verdict, SpotCheckVerdict::Mismatch);
        assert_eq!(v.evidence, SpotCheckEvidence::Disowned(signed.statement));
    }
}
