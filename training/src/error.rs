//! Errors of the training crate. Pseudo-gradients arrive from other nodes, so every
//! decoding or shape problem is a value, never a panic; tensor failures from candle and
//! model-loading failures from the inference crate are wrapped as they are.

use thiserror::Error;

/// Anything that can go wrong while training, aggregating or exchanging adapters.
#[derive(Debug, Error)]
pub enum TrainingError {
    /// A tensor operation failed.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// Loading or running the frozen model failed.
    #[error("inference: {0}")]
    Inference(#[from] neuroshard_inference::InferenceError),
    /// A configuration value is unusable (zero rank, empty layer range, ...).
    #[error("bad configuration: {0}")]
    BadConfig(String),
    /// Pseudo-gradient bytes from a peer are malformed, oversized or not finite.
    #[error("bad pseudo-gradient: {0}")]
    BadPseudoGradient(String),
    /// Too few contributions for the robust aggregation rule to tolerate the faults it
    /// was configured for.
    #[error("aggregation needs at least {needed} contributions, got {got}")]
    TooFewContributions { needed: usize, got: usize },
    /// The corpus or a dataset has too little text for the requested windows.
    #[error("dataset: {0}")]
    Dataset(String),
    /// The gradient exchange failed (peer gone, round closed, timeout).
    #[error("gradient exchange: {0}")]
    Exchange(String),
}

pub type Result<T> = std::result::Result<T, TrainingError>;
