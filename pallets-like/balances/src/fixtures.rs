//! Test fixtures (built for this crate's tests and, through the `test-fixtures` feature,
//! for the tests of the crates above it; production builds carry none of it).

use crate::Params;

/// Parameters for tests that are not about fees: an existential deposit of one base unit
/// and no transaction fees, so balances move by exactly what a test transfers, mints or
/// pays out.
pub fn params() -> Params {
    Params {
        existential_deposit: 1,
        base_fee: 0,
        byte_fee: 0,
    }
}
