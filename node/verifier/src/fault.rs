//! `--fault-false-mismatch MODE` (builds with the `fault-injection` feature only): a
//! validator that answers every spot check assigned to it with `Mismatch`, whatever the
//! work, to frame honest workers. The attack tests run it against the chain's checks of
//! verdicts.
//!
//! - `forged`: the verdict's evidence is made up: a material statement the worker never
//!   signed and a recomputed commitment nobody computed (what a validator that skips the
//!   work and lies would send).
//! - `refuted`: the real evidence (the worker's signed statement and the checker's own
//!   recomputation, which matches the worker's commitment) under a `Mismatch` label: a
//!   verdict its own evidence refutes.

use crate::verdict::Verdict;
use neuroshard_inference::commitment::{ActivationCommitment, PositionTopK};
use neuroshard_primitives::{
    Keypair, MaterialStatement, ReceiptBody, Recomputation, SpotCheckEvidence, SpotCheckVerdict,
};
use std::str::FromStr;

/// See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FalseMismatch {
    Forged,
    Refuted,
}

impl FromStr for FalseMismatch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "forged" => Ok(Self::Forged),
            "refuted" => Ok(Self::Refuted),
            other => Err(format!("{other:?} is not forged or refuted")),
        }
    }
}

impl FalseMismatch {
    /// The verdict this fault gives instead of the checker's `honest` one on `body`
    /// (`key`: the checker's own key).
    pub fn falsify(self, body: &ReceiptBody, key: &Keypair, honest: Verdict) -> Verdict {
        match self {
            FalseMismatch::Forged => {
                let made_up = |norm: f32| {
                    let per: Vec<PositionTopK> = (body.position_start..body.position_end)
                        .map(|_| PositionTopK {
                            norm,
                            top: vec![(0, norm), (1, norm / 2.0), (2, norm / 4.0), (3, norm / 8.0)],
                        })
                        .collect();
                    ActivationCommitment::from_positions(body.position_start, &per).encode()
                };
                let claimed = made_up(1.0);
                let statement =
                    MaterialStatement::of(body.id(), body.input_commitment, &claimed).sign(key);
                Verdict {
                    verdict: SpotCheckVerdict::Mismatch,
                    evidence: SpotCheckEvidence::Recomputed(Recomputation {
                        statement,
                        claimed,
                        recomputed: made_up(2.0),
                    }),
                    why: "fault injection: forged evidence".into(),
                }
            }
            FalseMismatch::Refuted => Verdict {
                verdict: SpotCheckVerdict::Mismatch,
                why: format!("fault injection: {} relabelled", honest.why),
                ..honest
            },
        }
    }
}
