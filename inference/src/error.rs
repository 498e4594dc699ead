//! Errors of the inference engine. Every error that comes from outside input (model
//! files, wheels, requests from peers) names what was wrong and where, so a user can act
//! on it; tensor-level failures from candle are wrapped as they are.

use std::path::PathBuf;
use thiserror::Error;

/// Anything that can go wrong while fetching, loading or running a model.
#[derive(Debug, Error)]
pub enum InferenceError {
    /// The model file exists but is not what it should be (truncated, corrupt, wrong kind).
    #[error("model file {path}: {reason}")]
    BadModelFile { path: PathBuf, reason: String },
    /// The model file's content hash is not the expected one.
    #[error("model file {path}: {algorithm} hash mismatch: expected {expected}, found {found}")]
    HashMismatch {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        found: String,
    },
    /// Downloading or unpacking the model package failed.
    #[error("fetching model: {0}")]
    Fetch(String),
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Building or running the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// A request is malformed (wrong shape, positions, layers, token ids).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is for another model than the one this shard serves.
    #[error("model mismatch: shard serves {served}, request is for {requested}")]
    WrongModel { served: String, requested: String },
    /// The shard's cache for the session does not reach the request's first position;
    /// the client must replay the session's accepted tokens.
    #[error("session {session}: cache holds {have} positions, request starts at {start}")]
    CacheGap {
        session: String,
        have: usize,
        start: usize,
    },
    /// The session is unknown to the shard.
    #[error("unknown session {0}")]
    UnknownSession(String),
    /// A shard could not be reached or failed while serving.
    #[error("transport to shard {shard}: {reason}")]
    Transport { shard: String, reason: String },
}

impl From<neuroshard_kernels::KernelError> for InferenceError {
    fn from(e: neuroshard_kernels::KernelError) -> Self {
        match e {
            neuroshard_kernels::KernelError::BadMatrix(why) => InferenceError::BadRequest(why),
            neuroshard_kernels::KernelError::Candle(e) => InferenceError::Candle(e),
        }
    }
}

impl InferenceError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A bad-model-file error for `path`.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadModelFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, InferenceError>;
