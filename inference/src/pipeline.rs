//! The pipeline client: sends a session's tokens through a route of shards covering
//! layers `0..N`, hidden states flowing from hop to hop. Each hop has one or more
//! providers; when the active provider fails (transport error, lost cache), the client
//! switches to the next one and replays the session's accepted tokens from position 0
//! in the same request, so the new provider rebuilds its cache and the output continues
//! as if nothing happened.

use crate::error::{InferenceError, Result};
use crate::messages::{HeadMode, ShardInput, ShardOutput, ShardRequest, WireDType, WorkRecord};
use crate::spot_check::InputLog;
use crate::transport::ShardTransport;
use candle_core::Tensor;
use neuroshard_primitives::{Hash, SessionId};
use std::sync::Arc;

/// One stage of the route: a layer range and the providers able to serve it.
pub struct Hop {
    providers: Vec<Arc<dyn ShardTransport>>,
    active: usize,
}

impl Hop {
    /// A hop served by `providers`, tried in order.
    pub fn new(providers: Vec<Arc<dyn ShardTransport>>) -> Self {
        Self {
            providers,
            active: 0,
        }
    }

    /// The providers of this hop, in failover order.
    pub fn providers(&self) -> &[Arc<dyn ShardTransport>] {
        &self.providers
    }
}

/// The provider that served one hop of a session and the digest of what it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedHop {
    /// Index of the provider in the hop's failover list.
    pub provider: usize,
    /// The provider's printable name.
    pub name: String,
    /// The session it served.
    pub session: SessionId,
    /// One past the last accepted position.
    pub until: u32,
    /// Digest of the inputs sent for positions `0..until` (`None`: fewer were sent).
    pub inputs: Option<Hash>,
}

impl ServedHop {
    /// Checks that `record` accounts for this hop's work: it is for this session, ends at
    /// the accepted length and carries the digest of exactly the inputs the provider was
    /// sent.
    pub fn check(&self, record: &WorkRecord) -> Result<()> {
        if record.session != self.session {
            return Err(InferenceError::Transport {
                shard: self.name.clone(),
                reason: "work record is for another session".into(),
            });
        }
        if record.position_end != self.until || Some(record.input_commitment) != self.inputs {
            return Err(InferenceError::Transport {
                shard: self.name.clone(),
                reason: format!(
                    "work record for positions {}..{} does not attest the inputs it was sent up to {}",
                    record.position_start, record.position_end, self.until
                ),
            });
        }
        Ok(())
    }
}

/// What the last shard returned for the positions of one request.
#[derive(Debug, Clone)]
pub enum HeadResult {
    /// Greedy next token after each position.
    Argmax(Vec<u32>),
    /// Logits `(seq, vocab)` of each position.
    Logits(Tensor),
}

/// A client session on a route of shards.
pub struct PipelineClient {
    model: Hash,
    session: SessionId,
    hops: Vec<Hop>,
    wire: WireDType,
    /// The tokens at positions `0..history.len()` the shards have been sent.
    history: Vec<u32>,
    /// What each hop's active provider was sent, per position: a record of its work must
    /// carry this log's digest as its input commitment before the client counter-signs.
    sent: Vec<InputLog>,
    failovers: usize,
}

impl PipelineClient {
    /// A client for `session` over `hops`, which must cover the model's layers in order.
    pub fn new(model: Hash, session: SessionId, hops: Vec<Hop>) -> Result<Self> {
        if hops.is_empty() || hops.iter().any(|h| h.providers.is_empty()) {
            return Err(InferenceError::BadRequest(
                "route has a hop without providers".into(),
            ));
        }
        let mut next = 0u16;
        for hop in &hops {
            for p in &hop.providers {
                let r = p.layers();
                if r.start != next || p.model() != model {
                    return Err(InferenceError::BadRequest(format!(
                        "provider {} serves {} of another model or out of order (expected start {next})",
                        p.name(),
                        r
                    )));
                }
            }
            next = hop.providers[0].layers().end;
        }
        Ok(Self {
            model,
            session,
            sent: vec![InputLog::default(); hops.len()],
            hops,
            wire: WireDType::F32,
            history: Vec::new(),
            failovers: 0,
        })
    }

    /// Sends hidden states as `wire` between hops (f32 by default; f16 halves the bytes).
    pub fn with_wire(mut self, wire: WireDType) -> Self {
        self.wire = wire;
        self
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn model(&self) -> Hash {
        self.model
    }

    /// Length of the longest common prefix of `tokens` and what the shards hold.
    pub fn cached_prefix(&self, tokens: &[u32]) -> usize {
        self.history
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// How many times a provider was replaced.
    pub fn failovers(&self) -> usize {
        self.failovers
    }

    /// Runs `tokens` at positions `start..` through the route. Positions at or after
    /// `start` sent earlier (rejected drafts) are discarded everywhere.
    pub fn forward(&mut self, tokens: &[u32], start: usize, head: HeadMode) -> Result<HeadResult> {
        self.forward_with(tokens, start, head, usize::MAX, &mut |_, _| Ok(()))
    }

    /// [`Self::forward`] in requests of at most `max_request` positions, calling
    /// `between(self, done)` after each request but the last with the positions the
    /// shards now hold (where a client pays its providers, who serve little on credit).
    /// A failover's replay of the session's tokens is sent the same way. Returns the
    /// head rows of the last request's positions.
    pub fn forward_with(
        &mut self,
        tokens: &[u32],
        start: usize,
        head: HeadMode,
        max_request: usize,
        between: &mut dyn FnMut(&PipelineClient, usize) -> Result<()>,
    ) -> Result<HeadResult> {
        if start > self.history.len() {
            return Err(InferenceError::BadRequest(format!(
                "position {start} is past the session's {} tokens",
                self.history.len()
            )));
        }
        let max_request = max_request.max(1);
        self.history.truncate(start);
        let (mut at, mut rest) = (start, tokens);
        while rest.len() > max_request {
            let (chunk, tail) = rest.split_at(max_request);
            self.forward_request(chunk, at, head, max_request, between)?;
            (at, rest) = (at + chunk.len(), tail);
            between(self, at)?;
        }
        self.forward_request(rest, at, head, max_request, between)
    }

    /// One request through the route, failing over (and replaying the session's
    /// tokens, in requests of at most `max_request`) when a provider fails.
    fn forward_request(
        &mut self,
        tokens: &[u32],
        start: usize,
        head: HeadMode,
        max_request: usize,
        between: &mut dyn FnMut(&PipelineClient, usize) -> Result<()>,
    ) -> Result<HeadResult> {
        let mut attempts = 0usize;
        let max_attempts: usize = self.hops.iter().map(|h| h.providers.len()).sum();
        let mut replay = false;
        loop {
            let run = match replay {
                true => self.replay(head, max_request, between)?,
                false => Ok(()),
            };
            match run.and_then(|()| self.run_route(tokens, start, head)) {
                Ok(out) => {
                    self.history.extend_from_slice(tokens);
                    return Ok(out);
                }
                Err((hop, err)) => {
                    attempts += 1;
                    let h = &mut self.hops[hop];
                    if attempts >= max_attempts || h.providers.len() < 2 {
                        return Err(err);
                    }
                    tracing::warn!(
                        "shard {} failed ({err}); failing over to the next provider",
                        h.providers[h.active].name()
                    );
                    h.active = (h.active + 1) % h.providers.len();
                    self.failovers += 1;
                    replay = true;
                }
            }
        }
    }

    /// Sends the session's tokens again from position 0 (a provider that took over a hop
    /// has none of them), in requests of at most `max_request` with `between` after each.
    /// The outer error ends the forward; the inner one is a hop's failure.
    #[allow(clippy::type_complexity)]
    fn replay(
        &mut self,
        head: HeadMode,
        max_request: usize,
        between: &mut dyn FnMut(&PipelineClient, usize) -> Result<()>,
    ) -> Result<std::result::Result<(), (usize, InferenceError)>> {
        let history = self.history.clone();
        for (i, chunk) in history.chunks(max_request).enumerate() {
            let at = i * max_request;
            if let Err(failed) = self.run_route(chunk, at, head) {
                return Ok(Err(failed));
            }
            between(self, at + chunk.len())?;
        }
        Ok(Ok(()))
    }

    fn run_route(
        &mut self,
        tokens: &[u32],
        start: usize,
        head: HeadMode,
    ) -> std::result::Result<HeadResult, (usize, InferenceError)> {
        let mut input = ShardInput::Tokens(tokens.to_vec());
        for (i, hop) in self.hops.iter().enumerate() {
            let provider = &hop.providers[hop.active];
            let req = ShardRequest {
                model: self.model,
                session: self.session,
                layers: provider.layers(),
                start_pos: start as u32,
                input,
                head,
                wire: self.wire,
            };
            let resp = provider.forward(&req).map_err(|e| (i, e))?;
            self.sent[i].record(start, &req.input).map_err(|e| (i, e))?;
            let last = i + 1 == self.hops.len();
            input = match (resp.output, last) {
                (ShardOutput::Hidden(a), false) => ShardInput::Hidden(a),
                (ShardOutput::Argmax(v), true) if v.len() == tokens.len() => {
                    return Ok(HeadResult::Argmax(v))
                }
                (ShardOutput::Logits(a), true) => {
                    let t = a.to_tensor().map_err(|e| (i, e))?;
                    return Ok(HeadResult::Logits(t));
                }
                _ => {
                    return Err((
                        i,
                        InferenceError::Transport {
                            shard: provider.name(),
                            reason: "unexpected response kind".into(),
                        },
                    ))
                }
            };
        }
        Err((
            self.hops.len() - 1,
            InferenceError::BadRequest("route does not end in a last shard".into()),
        ))
    }

    /// Who served each hop of this session and what a record of its work up to position
    /// `until` (the accepted length) must attest, in hop order. The caller asks each
    /// provider for its [`WorkRecord`] (and the node's billing for its receipt) and
    /// checks it with [`ServedHop::check`].
    pub fn served(&self, until: u32) -> Vec<ServedHop> {
        self.hops
            .iter()
            .zip(&self.sent)
            .map(|(h, sent)| ServedHop {
                provider: h.active,
                name: h.providers[h.active].name(),
                session: self.session,
                until,
                inputs: sent.digest(until as usize),
            })
            .collect()
    }

    /// The index of each hop's active provider in its failover list (the provider
    /// [`Self::served`] would name).
    pub fn active_providers(&self) -> Vec<usize> {
        self.hops.iter().map(|h| h.active).collect()
    }

    /// Ends the session on every provider.
    pub fn close(&self) {
        for hop in &self.hops {
            for p in &hop.providers {
                p.end_session(&self.session);
            }
        }
    }
}
