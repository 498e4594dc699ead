//! `neuroshard bench ...`: benchmarks that print their figures next to a baseline
//! measured in the same run, so every speed claim is a ratio, not a guess.

pub mod ledger;
pub mod network;
pub mod plot;
pub mod sim;
