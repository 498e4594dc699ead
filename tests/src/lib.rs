//! Harness for NeuroShard's multi-process integration tests: find the `neuroshard`
//! binary, start nodes on ephemeral RPC ports in temporary directories (killed and
//! cleaned up by `Drop`, even when a test fails), talk raw JSON-RPC over HTTP, and write
//! custom chain specs with short slots and epochs.
//!
//! Tests wait for conditions with bounded polling ([`wait_for`]); none asserts on how
//! long something took.

pub mod chain;
pub mod generation;
pub mod http;
pub mod netns;
pub mod process;
pub mod rpc;
pub mod spec;
pub mod tools;
pub mod training;
pub mod webdriver;

pub use process::{neuroshard_bin, NodeProcess};
pub use rpc::{RpcClient, RpcError};

use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` with
/// `what` in the message.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "timed out after {timeout:?} waiting for {what} (last error: {last_error:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
