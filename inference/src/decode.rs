//! The decoding loop over a pipeline, plain or speculative. Each round sends the last
//! accepted token plus the drafter's k proposals through the pipeline as one batch; the
//! last shard returns per-position argmaxes (greedy) or logits (sampling), and the client
//! keeps the longest accepted prefix plus one corrected or bonus token. Greedy acceptance
//! compares draft and argmax, so its output is the plain greedy output; sampling uses
//! standard speculative sampling, so its output has the target's distribution. The draft
//! length adapts to the measured acceptance rate and round cost ([`DraftLength`]).
//! The caller watches through a [`DecodeObserver`]: each accepted token, and a turn
//! before every round (where a client pays its workers for the positions so far).

use crate::draft_length::DraftLength;
use crate::drafter::Drafter;
use crate::error::{InferenceError, Result};
use crate::messages::HeadMode;
use crate::pipeline::{HeadResult, PipelineClient};
use crate::sampling::{probabilities, sample_weights, speculative_accept, Verdict};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// How to decode.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOptions {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub seed: u64,
    /// Stop (without emitting it) at this token.
    pub eos: Option<u32>,
    /// Initial draft length.
    pub draft_len: usize,
    /// Upper bound for the adaptive draft length.
    pub max_draft_len: usize,
    /// Adapt the draft length to the measured acceptance rate and round cost
    /// ([`DraftLength`]); otherwise every round drafts `draft_len`.
    pub adaptive: bool,
    /// Most positions one request through the pipeline carries (a longer prompt, or a
    /// failover's replay, goes in several, with the observer's
    /// [`DecodeObserver::before_round`] between them); `None`: no limit.
    pub max_request: Option<usize>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_tokens: 64,
            temperature: 0.0,
            seed: 0,
            eos: None,
            draft_len: 4,
            max_draft_len: 16,
            adaptive: true,
            max_request: None,
        }
    }
}

/// Counters of one decode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodeStats {
    /// Pipeline passes after the prompt.
    pub rounds: usize,
    /// Draft tokens proposed.
    pub drafted: usize,
    /// Draft tokens accepted.
    pub accepted: usize,
    /// Tokens produced (including the first one after the prompt).
    pub generated: usize,
}

impl DecodeStats {
    /// Accepted / drafted (0 when nothing was drafted).
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }

    /// Tokens gained per pipeline round (accepted drafts plus the one the target adds).
    pub fn tokens_per_round(&self) -> f64 {
        if self.rounds == 0 {
            0.0
        } else {
            (self.generated.saturating_sub(1)) as f64 / self.rounds as f64
        }
    }
}

/// Result of a decode.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub tokens: Vec<u32>,
    pub stats: DecodeStats,
    /// Prompt plus generated tokens whose positions the shards hold as accepted.
    pub accepted_positions: usize,
}

fn rows(result: HeadResult) -> Result<Rows> {
    Ok(match result {
        HeadResult::Argmax(v) => Rows::Argmax(v),
        HeadResult::Logits(t) => Rows::Logits(t.to_vec2::<f32>()?),
    })
}

enum Rows {
    Argmax(Vec<u32>),
    Logits(Vec<Vec<f32>>),
}

/// What the caller of [`decode_until`] sees while it decodes. Any `FnMut(u32) -> bool`
/// is an observer that only watches tokens.
pub trait DecodeObserver {
    /// A token was accepted; returning false ends decoding (a stop sequence matched,
    /// the client went away): no further round is computed.
    fn on_token(&mut self, token: u32) -> bool;

    /// Called before each round after the prompt with the session's accepted positions
    /// so far (everything the shards computed that the output keeps), and between the
    /// requests of a long prompt or a failover's replay (see
    /// [`DecodeOptions::max_request`]); an error ends decoding with that error.
    fn before_round(&mut self, _client: &PipelineClient, _accepted_positions: usize) -> Result<()> {
        Ok(())
    }
}

impl<F: FnMut(u32) -> bool> DecodeObserver for F {
    fn on_token(&mut self, token: u32) -> bool {
        self(token)
    }
}

/// Generates up to `opts.max_tokens` tokens after `prompt` through `client`, with
/// speculative rounds when a drafter is given. `on_token` sees each token as accepted.
pub fn decode<'d>(
    client: &mut PipelineClient,
    prompt: &[u32],
    opts: &DecodeOptions,
    drafter: Option<&mut (dyn Drafter + 'd)>,
    on_token: &mut dyn FnMut(u32),
) -> Result<Decoded> {
    decode_until(client, prompt, opts, drafter, &mut |t| {
        on_token(t);
        true
    })
}

/// [`decode`] watched by `observer`: it stops as soon as the observer's `on_token`
/// returns false or its `before_round` fails.
pub fn decode_until<'d>(
    client: &mut PipelineClient,
    prompt: &[u32],
    opts: &DecodeOptions,
    mut drafter: Option<&mut (dyn Drafter + 'd)>,
    observer: &mut dyn DecodeObserver,
) -> Result<Decoded> {
    if prompt.is_empty() {
        return Err(InferenceError::BadRequest("empty prompt".into()));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let sampling = opts.temperature > 0.0;
    let head = if sampling {
        HeadMode::Logits
    } else {
        HeadMode::Argmax
    };
    let mut stats = DecodeStats::default();
    let mut out: Vec<u32> = Vec::new();
    let mut context = prompt.to_vec();
    if opts.max_tokens == 0 {
        return Ok(Decoded {
            tokens: out,
            stats,
            accepted_positions: 0,
        });
    }
    let max_request = opts.max_request.unwrap_or(usize::MAX);
    // Reuse the session's cached prefix (a continued chat); feed at least the last token.
    let reuse = client.cached_prefix(prompt).min(prompt.len() - 1);
    let prefill = client.forward_with(
        &prompt[reuse..],
        reuse,
        head,
        max_request,
        &mut |c, done| observer.before_round(c, done),
    )?;
    let first = match rows(prefill)? {
        Rows::Argmax(v) => *v
            .last()
            .ok_or_else(|| InferenceError::BadRequest("no output".into()))?,
        Rows::Logits(l) => {
            let last = l
                .last()
                .ok_or_else(|| InferenceError::BadRequest("no output".into()))?;
            sample_weights(&probabilities(last, opts.temperature), &mut rng)
        }
    };
    let mut pending = vec![first];
    let mut length = DraftLength::new(opts.draft_len, opts.max_draft_len);
    'outer: loop {
        // Emit the newly produced tokens, stopping at eos or the budget.
        for &t in &pending {
            if Some(t) == opts.eos || out.len() >= opts.max_tokens {
                break 'outer;
            }
            out.push(t);
            context.push(t);
            stats.generated += 1;
            if !observer.on_token(t) {
                break 'outer;
            }
        }
        if out.len() >= opts.max_tokens {
            break;
        }
        // The last emitted token has not been fed; everything before it is accepted.
        observer.before_round(client, context.len() - 1)?;
        let budget = opts.max_tokens - out.len();
        let k = if opts.adaptive {
            length.get()
        } else {
            opts.draft_len.max(1)
        };
        let drafting = Instant::now();
        let draft = match drafter.as_deref_mut() {
            Some(d) => d.propose(
                &context,
                k.min(budget.saturating_sub(1)),
                opts.temperature,
                &mut rng,
            )?,
            None => Default::default(),
        };
        let draft_secs = drafting.elapsed().as_secs_f64();
        let last = *context.last().unwrap_or(&first);
        let mut batch = Vec::with_capacity(draft.tokens.len() + 1);
        batch.push(last);
        batch.extend_from_slice(&draft.tokens);
        let verifying = Instant::now();
        let out = client.forward_with(
            &batch,
            context.len() - 1,
            head,
            max_request,
            &mut |c, done| observer.before_round(c, done),
        )?;
        let result = rows(out)?;
        let verify_secs = verifying.elapsed().as_secs_f64();
        stats.rounds += 1;
        stats.drafted += draft.tokens.len();
        pending.clear();
        let mut accepted = 0usize;
        match result {
            Rows::Argmax(targets) => {
                for (i, &target) in targets.iter().enumerate() {
                    pending.push(target);
                    if i < draft.tokens.len() && draft.tokens[i] == target {
                        accepted += 1;
                    } else {
                        break;
                    }
                }
            }
            Rows::Logits(logits) => {
                let mut all = true;
                for (i, &x) in draft.tokens.iter().enumerate() {
                    let p = probabilities(&logits[i], opts.temperature);
                    let q = draft
                        .probs
                        .as_ref()
                        .and_then(|ps| ps.get(i))
                        .map(|v| v.as_slice());
                    match speculative_accept(x, &p, q, &mut rng) {
                        Verdict::Accept => {
                            pending.push(x);
                            accepted += 1;
                        }
                        Verdict::Reject(y) => {
                            pending.push(y);
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    let p = probabilities(&logits[draft.tokens.len()], opts.temperature);
                    pending.push(sample_weights(&p, &mut rng));
                }
            }
        }
        stats.accepted += accepted;
        if drafter.is_some() {
            length.observe(draft.tokens.len(), accepted, verify_secs, draft_secs);
        }
    }
    // The last emitted token has not been fed; everything before it is accepted.
    let accepted_positions = context.len() - 1;
    Ok(Decoded {
        tokens: out,
        stats,
        accepted_positions,
    })
}
