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
