//! The NeuroShard node: command line, chain storage (redb), the chain client joining the
//! runtime to storage and the transaction pool, slot-based block production and the
//! JSON-RPC server. The `neuroshard` binary (`main.rs`) is a thin wrapper around
//! [`commands::run`].
//!
//! Beside them: `p2p` glues the libp2p network crate to the chain and the shard worker,
//! `worker` and `miner` serve the model and earn, `spot_checker` re-runs sampled receipts
//! and `prober` probes workers' liveness (validators), `api` is the OpenAI-compatible HTTP API.

pub mod api;
pub mod authoring;
pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod finality;
pub mod light;
pub mod miner;
pub mod p2p;
pub mod pool;
pub mod prober;
pub mod rpc;
pub mod rpc_client;
pub mod service;
pub mod spot_checker;
pub mod store;
pub mod training;
pub mod worker;
