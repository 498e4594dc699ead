//! NeuroShard's inference engine: fetching and loading the model (GGUF files of the
//! families in [`models`], or safetensors Llama), its tokenizer, the shard executor for a layer range with per-session KV caches,
//! the pipeline client over a [`ShardTransport`], speculative decoding with n-gram and
//! small-model drafters, and the activation commitments and chain-agnostic work records
//! (what a shard did for a session) that the node's billing turns into receipts and a
//! validator re-runs in a spot check. Nothing here knows accounts, epochs or signatures.

pub mod archive;
pub mod batcher;
pub mod chat_template;
pub mod commitment;
pub mod config;
pub mod decode;
pub mod draft_length;
pub mod drafter;
pub mod error;
pub mod executor;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fetch;
pub mod generate;
pub mod messages;
pub mod models;
pub mod pipeline;
pub mod pre_tokenizer;
pub mod prefix_cache;
pub mod probe;
pub mod probe_window;
pub mod sampling;
pub mod shard;
pub mod spot_check;
pub mod tiny;
pub mod tiny_gguf;
pub mod tiny_vocab;
pub mod tokenizer;
pub mod transport;
pub mod weights;

/// The CPU kernels (a crate of their own, as ggml is to llama.cpp).
pub use neuroshard_kernels as kernels;

pub use commitment::ActivationCommitment;
pub use config::ModelConfig;
pub use decode::{decode, decode_until, DecodeObserver, DecodeOptions, DecodeStats, Decoded};
pub use drafter::{Draft, Drafter, ModelDrafter, NgramDrafter};
pub use error::{InferenceError, Result};
pub use executor::{KvCache, ShardExecutor};
pub use generate::{generate, DraftMode, GenerateOptions, GenerateOutput};
pub use messages::{
    HeadMode, RecordedWork, ShardRequest, ShardResponse, WireDType, WorkRecord, WorkRequest,
};
pub use pipeline::{HeadResult, Hop, PipelineClient, ServedHop};
pub use shard::Shard;
pub use transport::{InProcessTransport, ScopedTransport, ShardTransport};
pub use weights::{ModelSource, ModelWeights, Precision};
