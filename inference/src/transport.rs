//! `ShardTransport` hides where a shard runs. It is a plain synchronous, object-safe trait
//! (`Send + Sync`), so the pipeline client can hold `Arc<dyn ShardTransport>` for
//! in-process shards and remote peers alike; a network implementation can block on its
//! async request-response from a worker thread. [`InProcessTransport`] calls a local
//! [`Shard`] directly, optionally sleeping a fixed latency per call to model a network hop,
//! and can be switched off to model a peer going away. [`ScopedTransport`] is an
//! in-process shard used for one client, whose prompt prefixes it caches.

use crate::error::{InferenceError, Result};
use crate::messages::{RecordedWork, ShardRequest, ShardResponse, WorkRequest};
use crate::prefix_cache::PrefixScope;
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
        self.forward_scoped(req, None)
    }

    fn end_session(&self, session: &SessionId) {
        self.shard.end_session(session)
    }
}

impl InProcessTransport {
    fn forward_scoped(
        &self,
        req: &ShardRequest,
        scope: Option<&PrefixScope>,
    ) -> Result<ShardResponse> {
        self.check_alive()?;
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.shard.handle_scoped(req, scope)
    }
}

/// An in-process shard used on behalf of one client: its requests reuse and feed that
/// client's cached prompt prefixes (see [`crate::prefix_cache`]).
pub struct ScopedTransport {
    inner: Arc<InProcessTransport>,
    scope: PrefixScope,
}

impl ScopedTransport {
    pub fn new(inner: Arc<InProcessTransport>, scope: PrefixScope) -> Self {
        Self { inner, scope }
    }
}

impl ShardTransport for ScopedTransport {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn layers(&self) -> LayerRange {
        self.inner.layers()
    }

    fn model(&self) -> Hash {
        self.inner.model()
    }

    fn forward(&self, req: &ShardRequest) -> Result<ShardResponse> {
        self.inner.forward_scoped(req, Some(&self.scope))
    }

    fn end_session(&self, session: &SessionId) {
        self.inner.end_session(session)
    }
}
