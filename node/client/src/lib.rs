//! The chain client: everything a node needs to follow, extend and agree on the chain,
//! and nothing about models or serving.
//!
//! - [`client`]: the one place where the runtime, the store, the head state and the
//!   transaction pool meet; RPC, authoring and sync read and import through it;
//! - [`store`]: durable chain storage on redb, with every kept block's state readable
//!   through [`history`]; [`pool`]: the transaction pool;
//! - [`authoring`]: slot-based block production; [`finality`]: validators' votes and
//!   justifications; [`equivocation`]: catching and reporting double-sealed slots;
//! - [`sync`]: block sync requests and fork choice; [`gossip`]: transactions, blocks and
//!   votes over the network's gossip topics.

pub mod authoring;
pub mod client;
pub mod equivocation;
pub mod finality;
pub mod gossip;
pub mod history;
pub mod pool;
pub mod store;
pub mod sync;

#[cfg(feature = "fault-injection")]
pub use client::OmitReceipts;
pub use client::{
    hex_hash, unix_millis, ChainInfo, Client, ClientConfig, ClientError, SubmitError,
};
pub use gossip::ChainGossip;
pub use store::Store;
