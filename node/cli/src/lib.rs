//! The `neuroshard` binary's library: the command line ([`cli`]), one module per
//! subcommand ([`commands`]), and the one place where a node's components are wired
//! together ([`service`]: chain client, network, RPC and HTTP API, authoring, serving,
//! verification, training). `main.rs` is a thin wrapper around [`commands::run`].
//!
//! Every component lives in its own crate under `node/`: `neuroshard-client` (the chain),
//! `neuroshard-serving` (shards, routing, billing, mining), `neuroshard-verifier` (spot
//! checks, liveness probes), `neuroshard-trainer` (Proof of Training), `neuroshard-rpc`
//! (JSON-RPC, HTTP API); benchmarks are in `neuroshard-bench` (`--features bench`).

pub mod cli;
pub mod commands;
pub mod network;
#[cfg(feature = "fault-injection")]
pub mod partition;
pub mod service;
