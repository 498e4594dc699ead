//! `neuroshard bench ...`: every benchmark and simulation, each printing its figures next
//! to a baseline measured in the same run, so every speed claim is a ratio, not a guess.
//! Production crates carry no benchmark code; the `neuroshard` binary includes this
//! crate only when built with `--features bench`.
//!
//! - [`inference`]: decode speed, single process vs pipeline, speculative vs plain, and
//!   against llama.cpp ([`llamacpp`]) and candle; [`formats`]: per GGUF format against
//!   llama.cpp on a generated 1B model (`bench inference --make-model 1b`);
//! - [`sweep`]: decode speed against shards and per-hop latency ([`plot`] draws it);
//! - [`verify`]: what spot checks cost and what they catch ([`verify_serve`] serves the
//!   honest and cheating workers);
//! - [`network`]: the three shards in three processes over libp2p;
//! - [`kernels`]: our fused matrix kernels against candle's `QMatMul`, per GGUF format;
//! - [`ledger`]: receipts verified and applied per second in block import;
//! - [`sim`]: many nodes' network services in one process;
//! - [`training`]: Proof of Training rounds, time and bytes;
//! - [`serve`]: many streaming clients against one dev node (continuous batching;
//!   [`serve_load`] its clients, [`serve_plot`] its chart; [`serve_nodes`] the same
//!   through a three-process pipeline, batched forwards against one session per call);
//! - [`prefix`]: time to first token with a cached shared system prompt vs cold;
//! - [`state_history`]: historical state reads and pruning on a long synthetic chain.

pub mod command;
pub mod econ;
pub mod formats;
pub mod inference;
pub mod kernels;
pub mod ledger;
pub mod llamacpp;
pub mod llamacpp_batch;
pub mod network;
pub mod plot;
pub mod prefix;
pub mod serve;
pub mod serve_load;
pub mod serve_nodes;
pub mod serve_plot;
pub mod sim;
pub mod state_history;
pub mod sweep;
pub mod training;
pub mod verify;
pub mod verify_probe;
pub mod verify_serve;

pub use command::{run, BenchCommand};
