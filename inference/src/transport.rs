//! `ShardTransport` hides where a shard runs. It is a plain synchronous, object-safe trait
//! (`Send + Sync`), so the pipeline client can hold `Arc<dyn ShardTransport>` for
//! in-process shards and remote peers alike; a network implementation can block on its
//! async request-response from a worker thread. [`InProcessTransport`] calls a local
//! [`Shard`] directly, optionally sleeping a fixed latency per call to model a network hop,
//! and can be switched off to model a peer going away.

use crate::error::{InferenceError, Result};
use crate::messages::{RecordedWork, ShardRequest, ShardResponse, WorkRequest};
use crate::shard::Shard;
use neuroshard_primitives::{Hash, LayerRange, SessionId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A route to one shard provider.
pub trait ShardTransport: Send + Sync {
    /// A printable name of the provider (peer id, "local:0-10", ...).
    fn name(&self) -> String;
    /// The layers the provider serves.
    fn layers(&self) -> LayerRange;
    /// The model hash the provider serves.
    fn model(&self) -> Hash;
    /// Runs a request on the provider.
    fn forward(&self, req: &ShardRequest) -> Result<ShardResponse>;
    /// Tells the provider a session is over (best effort).
    fn end_session(&self, session: &SessionId);
}

/// A shard in this process.
pub struct InProcessTransport {
    shard: Arc<Shard>,
    latency: Duration,
    alive: AtomicBool,
    calls: AtomicU64,
}

impl InProcessTransport {
    /// Wraps `shard`.
    pub fn new(shard: Arc<Shard>) -> Self {
        Self {
            shard,
            latency: Duration::ZERO,
            alive: AtomicBool::new(true),
            calls: AtomicU64::new(0),
        }
    }

    /// Adds `latency` to every forward call (a simulated network hop).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Switches the provider off (every call fails) or back on.
    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::SeqCst);
    }

    /// Forward calls served so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    /// Records the shard's work on a session (see [`Shard::record_work`]); fails like
    /// every call when the provider is switched off.
    pub fn record_work(&self, req: &WorkRequest) -> Result<RecordedWork> {
        self.check_alive()?;
        self.shard.record_work(req)
    }

    fn check_alive(&self) -> Result<()> {
        if self.alive.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(InferenceError::Transport {
                shard: self.name(),
                reason: "provider is offline".into(),
            })
        }
    }
}

impl ShardTransport for InProcessTransport {
    fn name(&self) -> String {
        format!("local:{}", self.shard.layers())
    }

    fn layers(&self) -> LayerRange {
        self.shard.layers()
    }

    fn model(&self) -> Hash {
        self.shard.model()
    }

    fn forward(&self, req: &ShardRequest) -> Result<ShardResponse> {
        self.check_alive()?;
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.shard.handle(req)
    }

    fn end_session(&self, session: &SessionId) {
        self.shard.end_session(session)
    }
}
