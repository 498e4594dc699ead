//! Micro-batches on the wire: the forward requests this node's sessions send to one
//! remote shard go through that shard's [`Outbox`], which sends the requests waiting at
//! the moment as one batched forward call (`InferenceCall::Forward`, at most
//! [`MAX_FORWARD_SESSIONS`] sessions) and hands each session its own answer.
//!
//! Pipelining: an outbox keeps up to [`CALLS_IN_FLIGHT`] calls in flight, so while the
//! provider computes one micro-batch the next one is already on its way, and no stage
//! waits for a whole round of the pipeline before taking its next micro-batch: the
//! sessions whose answer came back from hop `k` go on to hop `k + 1` while the next
//! micro-batch runs at hop `k`. Nothing waits on a timer: a request is sent at once
//! when the outbox has room, and requests that arrive while it has none are sent
//! together when a call returns. A session has at most one request in flight per hop
//! (its pipeline is sequential), and the sessions in flight stay within what the
//! provider's budget admits from one peer ([`MAX_FORWARD_SESSIONS`]).
//!
//! Like the batcher, no thread is dedicated to it: a caller with room sends the call for
//! everyone queued (flat combining) and then, if its own request was not in it, waits.

use crate::protocol::MAX_FORWARD_SESSIONS;
use neuroshard_inference::messages::{ShardRequest, ShardResponse};
use neuroshard_network::PeerId;
use neuroshard_primitives::{Hash, LayerRange, SessionId};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::Arc;

/// Calls an outbox keeps in flight at once.
pub const CALLS_IN_FLIGHT: usize = 4;

/// The answers of one call, one per request in order, or why the whole call failed.
pub type CallResult = Result<Vec<Result<ShardResponse, String>>, String>;

/// The outboxes of this node's remote shards, one per (provider, model, layers).
pub struct Outboxes {
    boxes: Mutex<HashMap<(PeerId, Hash, LayerRange), Arc<Outbox>>>,
    batch: usize,
}

impl Default for Outboxes {
    fn default() -> Self {
        Self::with_batch(MAX_FORWARD_SESSIONS)
    }
}

impl Outboxes {
    /// Outboxes whose calls carry at most `batch` sessions (clamped to
    /// `1..=MAX_FORWARD_SESSIONS`): [`CALLS_IN_FLIGHT`] calls at once, or, with a batch
    /// of 1 (every session's request sent alone, the baseline of `bench serve --nodes
    /// 3`), one call per session in flight.
    pub fn with_batch(batch: usize) -> Self {
        Self {
            boxes: Mutex::default(),
            batch: batch.clamp(1, MAX_FORWARD_SESSIONS),
        }
    }

    /// The outbox of `layers` of `model` at `peer`.
    pub fn get(&self, peer: PeerId, model: Hash, layers: LayerRange) -> Arc<Outbox> {
        let calls = match self.batch {
            1 => MAX_FORWARD_SESSIONS,
            _ => CALLS_IN_FLIGHT,
        };
        self.boxes
            .lock()
            .entry((peer, model, layers))
            .or_insert_with(|| Arc::new(Outbox::new(self.batch, calls)))
            .clone()
    }
}

#[derive(Default)]
struct State {
    /// Requests waiting to be sent, with their ticket.
    queued: Vec<(u64, ShardRequest)>,
    /// Answers not yet taken by their callers, by ticket.
    answers: HashMap<u64, Result<ShardResponse, String>>,
    next_ticket: u64,
    calls: usize,
    sessions: usize,
}

/// One remote shard's queue of forward requests (see the module docs).
pub struct Outbox {
    state: Mutex<State>,
    changed: Condvar,
    /// Most sessions per call.
    batch: usize,
    /// Most calls in flight.
    calls: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new(MAX_FORWARD_SESSIONS, CALLS_IN_FLIGHT)
    }
}

impl Outbox {
    /// An outbox sending calls of at most `batch` sessions, at most `calls` at once.
    pub fn new(batch: usize, calls: usize) -> Self {
        Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            batch: batch.max(1),
            calls: calls.max(1),
        }
    }

    /// Sends `req` in the next call with room and returns its answer; `send` makes one
    /// call of a micro-batch (blocking) and returns its answers.
    pub fn forward(
        &self,
        req: &ShardRequest,
        send: impl Fn(Vec<ShardRequest>) -> CallResult,
    ) -> Result<ShardResponse, String> {
        let mut state = self.state.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push((ticket, req.clone()));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer;
            }
            let room = MAX_FORWARD_SESSIONS
                .saturating_sub(state.sessions)
                .min(self.batch);
            if state.calls < self.calls && room > 0 && !state.queued.is_empty() {
                let batch = take_batch(&mut state.queued, room);
                state.calls += 1;
                state.sessions += batch.len();
                drop(state);
                let requests: Vec<ShardRequest> = batch.iter().map(|(_, r)| r.clone()).collect();
                let result = send(requests);
                state = self.state.lock();
                state.calls -= 1;
                state.sessions -= batch.len();
                deliver(&mut state.answers, &batch, result);
                self.changed.notify_all();
                continue;
            }
            self.changed.wait(&mut state);
        }
    }
}

/// Takes up to `room` queued requests of distinct sessions, oldest first (a later
/// request of a session already taken stays for the next call).
fn take_batch(queued: &mut Vec<(u64, ShardRequest)>, room: usize) -> Vec<(u64, ShardRequest)> {
    let mut sessions: Vec<SessionId> = Vec::new();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for (ticket, req) in queued.drain(..) {
        if batch.len() < room && !sessions.contains(&req.session) {
            sessions.push(req.session);
            batch.push((ticket, req));
        } else {
            rest.push((ticket, req));
        }
    }
    *queued = rest;
    batch
}

/// Files each request's answer under its ticket: its own answer when it answers that
/// request (same session and first position), else an error; the call's error for all
/// when the call failed or answered a different number of requests.
fn deliver(
    answers: &mut HashMap<u64, Result<ShardResponse, String>>,
    batch: &[(u64, ShardRequest)],
    result: CallResult,
) {
    let replies = result.and_then(|replies| match replies.len() == batch.len() {
        true => Ok(replies),
        false => Err(format!(
            "{} answers to a call of {} requests",
            replies.len(),
            batch.len()
        )),
    });
    match replies {
        Ok(replies) => {
            for ((ticket, req), reply) in batch.iter().zip(replies) {
                let reply = reply.and_then(|resp| {
                    match resp.session == req.session && resp.start_pos == req.start_pos {
                        true => Ok(resp),
                        false => Err("reply does not answer the request".to_string()),
                    }
                });
                answers.insert(*ticket, reply);
            }
        }
        Err(e) => {
            for (ticket, _) in batch {
                answers.insert(*ticket, Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_inference::messages::{HeadMode, ShardInput, ShardOutput, WireDType};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn request(session: u8, start_pos: u32) -> ShardRequest {
        ShardRequest {
            model: Hash::repeat_byte(1),
            session: [session; 16],
            layers: LayerRange::new(0, 10).expect("a range"),
            start_pos,
            input: ShardInput::Tokens(vec![session as u32]),
            head: HeadMode::Argmax,
            wire: WireDType::F32,
        }
    }

    /// A provider answering each request with its session's first byte as the token.
    fn echo(requests: Vec<ShardRequest>) -> Vec<Result<ShardResponse, String>> {
        requests
            .into_iter()
            .map(|r| {
                Ok(ShardResponse {
                    session: r.session,
                    start_pos: r.start_pos,
                    output: ShardOutput::Argmax(vec![r.session[0] as u32]),
                })
            })
            .collect()
    }

    /// Waits (at most a minute) until `ready()`; whether it came.
    fn until(ready: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ready() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn concurrent_sessions_share_calls_and_each_gets_its_own_answer() {
        let outbox = Outbox::default();
        let (calls, most, late) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        std::thread::scope(|s| {
            for session in 0..12u8 {
                let (outbox, calls, most, late) = (&outbox, &calls, &most, &late);
                s.spawn(move || {
                    let answer = outbox
                        .forward(&request(session, 5), |reqs| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            most.fetch_max(reqs.len(), Ordering::SeqCst);
                            // The provider answers once every session has asked.
                            if !until(|| outbox.state.lock().next_ticket == 12) {
                                late.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(echo(reqs))
                        })
                        .expect("an answer");
                    assert_eq!(answer.session, [session; 16]);
                    assert!(
                        matches!(answer.output, ShardOutput::Argmax(ref t) if t == &[session as u32])
                    );
                });
            }
        });
        assert_eq!(late.load(Ordering::SeqCst), 0, "not every session asked");
        // At most CALLS_IN_FLIGHT calls were in flight while the others queued: the rest
        // went in one call.
        assert!(calls.load(Ordering::SeqCst) <= CALLS_IN_FLIGHT + 1);
        assert!(most.load(Ordering::SeqCst) >= 12 - CALLS_IN_FLIGHT);
    }

    #[test]
    fn a_wrong_or_short_reply_fails_the_requests_it_does_not_answer() {
        let outbox = Outbox::default();
        let swapped = outbox.forward(&request(1, 3), |reqs| {
            let mut out = echo(reqs);
            if let Some(Ok(r)) = out.first_mut() {
                r.start_pos += 1;
            }
            Ok(out)
        });
        assert!(swapped.is_err());
        let short = outbox.forward(&request(2, 0), |_| Ok(Vec::new()));
        assert!(short.unwrap_err().contains("0 answers"));
        let failed = outbox.forward(&request(3, 0), |_| Err("gone".into()));
        assert_eq!(failed.unwrap_err(), "gone");
    }

    #[test]
    fn a_batch_takes_each_session_once() {
        let mut queued = vec![(0, request(1, 0)), (1, request(1, 1)), (2, request(2, 0))];
        let batch = take_batch(&mut queued, 16);
        assert_eq!(batch.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(queued.len(), 1);
    }

    #[test]
    fn with_a_batch_of_one_every_session_is_sent_alone_at_once() {
        let outbox = Outboxes::with_batch(1).get(
            PeerId::random(),
            Hash::repeat_byte(1),
            LayerRange::new(0, 10).expect("a range"),
        );
        let (most, in_flight, late) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        std::thread::scope(|s| {
            for session in 0..6u8 {
                let (outbox, most, in_flight, late) = (&outbox, &most, &in_flight, &late);
                s.spawn(move || {
                    outbox
                        .forward(&request(session, 0), |reqs| {
                            most.fetch_max(reqs.len(), Ordering::SeqCst);
                            in_flight.fetch_add(1, Ordering::SeqCst);
                            // Every session's call is in flight at once.
                            if !until(|| in_flight.load(Ordering::SeqCst) == 6) {
                                late.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(echo(reqs))
                        })
                        .expect("an answer");
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(
            late.load(Ordering::SeqCst),
            0,
            "calls waited for each other"
        );
    }
}
