//! Drafters propose the next few tokens cheaply so the pipeline can verify them in one
//! round trip. [`NgramDrafter`] looks the context's last n-gram up earlier in the context
//! (prompt lookup, no model); [`ModelDrafter`] runs a small local model with the same
//! tokenizer (for example the Q4_1 GGUF drafting for an f32 target) with its own KV cache,
//! reusing the common prefix between rounds.

use crate::error::Result;
use crate::executor::{ExecInput, KvCache, ShardExecutor};
use crate::sampling::{argmax, probabilities, sample_weights};
use crate::weights::ModelWeights;
use rand::rngs::StdRng;

/// Proposed tokens and, for sampling, the distribution each was drawn from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    pub tokens: Vec<u32>,
    /// `probs[i]` is the drafter's distribution for `tokens[i]`; `None` means the tokens
    /// were chosen deterministically (a one-hot proposal).
    pub probs: Option<Vec<Vec<f32>>>,
}

/// Something that guesses continuations of a context.
pub trait Drafter: Send {
    /// A short name for reports ("ngram", "model").
    fn name(&self) -> &'static str;
    /// Proposes up to `k` tokens following `context`. With `temperature > 0` a drafter may
    /// sample (then it must return the distributions it sampled from).
    fn propose(
        &mut self,
        context: &[u32],
        k: usize,
        temperature: f64,
        rng: &mut StdRng,
    ) -> Result<Draft>;
}

/// Prompt-lookup drafting: finds the most recent earlier occurrence of the context's last
/// `n` tokens (longest `n` first) and proposes what followed it.
#[derive(Clone, Debug)]
pub struct NgramDrafter {
    pub max_n: usize,
    pub min_n: usize,
}

impl Default for NgramDrafter {
    fn default() -> Self {
        Self { max_n: 4, min_n: 1 }
    }
}

impl NgramDrafter {
    /// The lookup itself (deterministic).
    pub fn lookup(&self, context: &[u32], k: usize) -> Vec<u32> {
        let len = context.len();
        for n in (self.min_n.max(1)..=self.max_n).rev() {
            if len <= n {
                continue;
            }
            let tail = &context[len - n..];
            // Latest earlier occurrence whose continuation is inside the context.
            for start in (0..len - n).rev() {
                if &context[start..start + n] == tail {
                    let from = start + n;
                    let to = (from + k).min(len);
                    if to > from {
                        return context[from..to].to_vec();
                    }
                }
            }
        }
        Vec::new()
    }
}

impl Drafter for NgramDrafter {
    fn name(&self) -> &'static str {
        "ngram"
    }

    fn propose(&mut self, context: &[u32], k: usize, _t: f64, _rng: &mut StdRng) -> Result<Draft> {
        Ok(Draft {
            tokens: self.lookup(context, k),
            probs: None,
        })
    }
}

/// Drafting with a small local model run whole in this process.
pub struct ModelDrafter {
    exec: ShardExecutor,
    cache: KvCache,
    /// Tokens whose keys and values are in `cache`.
    fed: Vec<u32>,
}

impl ModelDrafter {
    /// A drafter over a whole model's weights.
    pub fn new(weights: ModelWeights) -> Result<Self> {
        let exec = ShardExecutor::new(weights)?;
        let cache = exec.new_cache();
        Ok(Self {
            exec,
            cache,
            fed: Vec::new(),
        })
    }

    fn logits_after(&mut self, tokens: &[u32], start: usize) -> Result<Vec<f32>> {
        let h = self
            .exec
            .forward(&mut self.cache, ExecInput::Tokens(tokens), start)?;
        let seq = h.dim(1)?;
        let last = h.narrow(1, seq - 1, 1)?;
        self.fed.truncate(start);
        self.fed.extend_from_slice(tokens);
        Ok(self.exec.head(&last)?.squeeze(0)?.to_vec1::<f32>()?)
    }
}

impl Drafter for ModelDrafter {
    fn name(&self) -> &'static str {
        "model"
    }

    fn propose(
        &mut self,
        context: &[u32],
        k: usize,
        temperature: f64,
        rng: &mut StdRng,
    ) -> Result<Draft> {
        if context.is_empty() || k == 0 {
            return Ok(Draft::default());
        }
        let common = self
            .fed
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count();
        // Re-feed at least the last context token to get its logits.
        let start = common.min(context.len() - 1);
        let mut logits = self.logits_after(&context[start..], start)?;
        let mut tokens = Vec::with_capacity(k);
        let mut probs = Vec::new();
        for i in 0..k {
            let next = if temperature > 0.0 {
                let p = probabilities(&logits, temperature);
                let t = sample_weights(&p, rng);
                probs.push(p);
                t
            } else {
                argmax(&logits)
            };
            tokens.push(next);
            if i + 1 < k {
                let pos = context.len() + i;
                logits = self.logits_after(&[next], pos)?;
            }
        }
        Ok(Draft {
            tokens,
            probs: (temperature > 0.0).then_some(probs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_lookup_prefers_longest_latest_match() {
        let d = NgramDrafter::default();
        // "1 2 3" occurred before, followed by 4 5.
        assert_eq!(d.lookup(&[1, 2, 3, 4, 5, 9, 1, 2, 3], 2), vec![4, 5]);
        // Latest occurrence of the bigram wins.
        assert_eq!(d.lookup(&[7, 8, 1, 7, 8, 2, 7, 8], 1), vec![2]);
        // Proposals never run past the context.
        assert_eq!(d.lookup(&[5, 6, 5], 4), vec![6, 5]);
        assert!(d.lookup(&[1, 2, 3], 4).is_empty());
        assert!(d.lookup(&[], 4).is_empty());
    }
}
