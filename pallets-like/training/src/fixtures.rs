//! Test fixtures: the training parameters and the genesis state (balances, PoNW and
//! training) the tests of this pallet, the runtime and the training crate build on.
//! Built for this crate's tests and, through the `test-fixtures` feature, for the tests
//! of the crates above it (only their dev-dependencies enable it).

use crate::{build_genesis, Params};
use neuroshard_ponw::fixtures::Genesis;
use neuroshard_primitives::UNIT;
use neuroshard_support::StateDb;

/// Parameters with these defaults: 5 NSHD per verified round, a round closes when at
/// least 2 contributors agree, at most 16 receipts a round, no collection window
/// (receipts and reports at any time), 10 blocks for the drawn verifier, no slash for a
/// contradicted claim.
pub fn params() -> Params {
    Params {
        training_reward: 5 * UNIT,
        min_contributors: 2,
        max_contributors: 16,
        collect_blocks: 0,
        verify_blocks: 10,
        contradiction_slash: 0,
    }
}

/// The genesis state of `ponw` (balances and PoNW, see [`Genesis`]) with the training
/// pallet's `params`.
pub fn genesis(ponw: &Genesis, params: &Params) -> StateDb {
    let mut state = StateDb::new();
    state
        .commit(|o| {
            ponw.build_into(o)?;
            build_genesis(o, params)
        })
        .expect("the fixture genesis builds");
    state
}
