//! The validator's checks of workers, the verification half of Proof of Neural Work:
//!
//! - [`spot_checker`]: re-runs the receipts the chain sampled and assigned to this
//!   validator on the worker's committed inputs and submits the verdicts;
//! - [`prober`]: sends the workers drawn for this validator a liveness probe each minute,
//!   re-runs it and reports who answered correctly.

#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod prober;
pub mod spot_checker;
pub mod verdict;

#[cfg(feature = "fault-injection")]
pub use fault::FalseMismatch;
pub use spot_checker::SpotChecker;
