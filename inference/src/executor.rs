//! The shard executor: runs transformer blocks `[start, end)` of a Llama model over a
//! batch of consecutive positions, with a per-session KV cache that can be truncated to
//! any position (rejected speculative drafts, failover replay). The first shard embeds
//! token ids; the last applies the final norm and LM head to every position.
//!
//! The arithmetic deliberately mirrors `candle_transformers::models::quantized_llama`
//! operation by operation (same rotary tables, same op order), so a chain of shards
//! reproduces that model's logits; the test suite uses it as the oracle. One deliberate
//! difference: attention is evaluated row by row over each row's visible keys (the oracle
//! masks a square score matrix), which makes every position's result independent of the
//! batch it was computed in — the property speculative verification and failover replay
//! need to reproduce plain greedy decoding exactly. For one-token steps the two agree bit
//! for bit.

use crate::config::ModelConfig;
use crate::error::{InferenceError, Result};
use crate::weights::{LayerWeights, ModelWeights};
use candle_core::{DType, Device, Module, Tensor, D};

/// The keys and values one session has produced in each of the shard's layers.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// A cache for a shard with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every position at or after `pos`.
    pub fn truncate(&mut self, pos: usize) -> Result<()> {
        if pos >= self.len {
            return Ok(());
        }
        for entry in self.layers.iter_mut() {
            if pos == 0 {
                *entry = None;
            } else if let Some((k, v)) = entry {
                *entry = Some((k.narrow(2, 0, pos)?, v.narrow(2, 0, pos)?));
            }
        }
        self.len = pos;
        Ok(())
    }
}

/// Input to a shard: token ids (first shard) or hidden states `(1, seq, hidden)`.
#[derive(Debug, Clone)]
pub enum ExecInput<'a> {
    Tokens(&'a [u32]),
    Hidden(&'a Tensor),
}

/// Runs one shard's layers.
#[derive(Debug, Clone)]
pub struct ShardExecutor {
    weights: ModelWeights,
    cos: Tensor,
    sin: Tensor,
}

fn rotary_tables(config: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    // Same construction as candle's `precomput_freqs_cis`, so the tables are bit-identical.
    let theta: Vec<_> = (0..config.head_dim)
        .step_by(2)
        .map(|i| 1f32 / config.rope_theta.powf(i as f32 / config.head_dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let idx_theta = Tensor::arange(0, config.max_seq_len as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((config.max_seq_len, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((idx_theta.cos()?, idx_theta.sin()?))
}

impl ShardExecutor {
    pub fn new(weights: ModelWeights) -> Result<Self> {
        let device = Device::Cpu;
        let (cos, sin) = rotary_tables(&weights.config, &device)?;
        Ok(Self { weights, cos, sin })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.weights.config
    }

    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// A fresh, empty cache for one session on this shard.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.weights.layers.len())
    }

    /// Runs the shard's layers for positions `start..start + seq` and returns the output
    /// hidden states `(1, seq, hidden)`. The cache is first truncated to `start`; it must
    /// already hold every position before `start`.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        input: ExecInput<'_>,
        start: usize,
    ) -> Result<Tensor> {
        let cfg = &self.weights.config;
        if cache.len() < start {
            return Err(InferenceError::CacheGap {
                session: String::new(),
                have: cache.len(),
                start,
            });
        }
        let mut x = match input {
            ExecInput::Tokens(tokens) => {
                let emb = self.weights.embedding.as_ref().ok_or_else(|| {
                    InferenceError::BadRequest(
                        "token input sent to a shard that is not first".into(),
                    )
                })?;
                if let Some(bad) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                    return Err(InferenceError::BadRequest(format!(
                        "token id {bad} is outside the vocabulary of {}",
                        cfg.vocab_size
                    )));
                }
                let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                candle_nn::Embedding::new(emb.clone(), cfg.hidden_size).forward(&ids)?
            }
            ExecInput::Hidden(h) => {
                if self.weights.is_first() {
                    return Err(InferenceError::BadRequest(
                        "hidden-state input sent to the first shard".into(),
                    ));
                }
                let dims = h.dims();
                if dims.len() != 3 || dims[0] != 1 || dims[2] != cfg.hidden_size {
                    return Err(InferenceError::BadRequest(format!(
                        "hidden states of shape {dims:?}, expected (1, seq, {})",
                        cfg.hidden_size
                    )));
                }
                h.to_dtype(DType::F32)?
            }
        };
        let seq = x.dim(1)?;
        if seq == 0 {
            return Err(InferenceError::BadRequest("empty input".into()));
        }
        if start + seq > cfg.max_seq_len {
            return Err(InferenceError::BadRequest(format!(
                "positions up to {} exceed the context length {}",
                start + seq,
                cfg.max_seq_len
            )));
        }
        cache.truncate(start)?;
        for (layer, slot) in self.weights.layers.iter().zip(cache.layers.iter_mut()) {
            x = self.block(layer, slot, &x, start)?;
        }
        cache.len = start + seq;
        Ok(x)
    }

    /// Final norm and LM head over every position: `(1, seq, hidden)` -> `(seq, vocab)`.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let (norm, head) = match (&self.weights.norm, &self.weights.lm_head) {
            (Some(n), Some(h)) => (n, h),
            _ => {
                return Err(InferenceError::BadRequest(
                    "logits requested from a shard that is not last".into(),
                ))
            }
        };
        let x = candle_nn::ops::rms_norm(hidden, norm, self.weights.config.rms_norm_eps as f32)?;
        let x = x.squeeze(0)?;
        Ok(head.forward(&x)?)
    }

    fn rope(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (_b, _h, seq, _d) = x.dims4()?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        let x = x.contiguous()?;
        Ok(if self.weights.config.rope_interleaved {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope(&x, &cos, &sin)?
        })
    }

    fn block(
        &self,
        w: &LayerWeights,
        slot: &mut Option<(Tensor, Tensor)>,
        x: &Tensor,
        start: usize,
    ) -> Result<Tensor> {
        let eps = self.weights.config.rms_norm_eps as f32;
        let residual = x;
        let h = candle_nn::ops::rms_norm(x, &w.attn_norm, eps)?;
        let attn = self.attention(w, slot, &h, start)?;
        let x = (attn + residual)?;
        let residual = &x;
        let h = candle_nn::ops::rms_norm(&x, &w.ffn_norm, eps)?;
        let gate = w.w_gate.forward(&h)?;
        let up = w.w_up.forward(&h)?;
        let h = w.w_down.forward(&(candle_nn::ops::silu(&gate)? * up)?)?;
        Ok((h + residual)?)
    }

    fn attention(
        &self,
        w: &LayerWeights,
        slot: &mut Option<(Tensor, Tensor)>,
        x: &Tensor,
        start: usize,
    ) -> Result<Tensor> {
        let cfg = &self.weights.config;
        let (b, seq, n_embd) = x.dims3()?;
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let q =
            w.wq.forward(x)?
                .reshape((b, seq, nh, hd))?
                .transpose(1, 2)?;
        let k =
            w.wk.forward(x)?
                .reshape((b, seq, nkv, hd))?
                .transpose(1, 2)?;
        let v =
            w.wv.forward(x)?
                .reshape((b, seq, nkv, hd))?
                .transpose(1, 2)?
                .contiguous()?;
        let q = self.rope(&q, start)?;
        let k = self.rope(&k, start)?;
        let (k, v) = match slot.as_ref() {
            Some((kc, vc)) if start > 0 => (Tensor::cat(&[kc, &k], 2)?, Tensor::cat(&[vc, &v], 2)?),
            _ => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        // Each query row attends to exactly its visible keys with the ops of a one-token
        // step, so a row's result never depends on how many rows share the batch: batched
        // verification, replayed prefixes and plain decoding are bit-identical.
        // Queries grouped by the KV head they share: (1, kv_heads, group, head_dim), so
        // keys and values are read in place instead of being repeated per query head.
        let group = nh / nkv;
        let rows = (0..seq)
            .map(|i| {
                let visible = start + i + 1;
                let q = q.narrow(2, i, 1)?.reshape((b, nkv, group, hd))?;
                let k = k.narrow(2, 0, visible)?;
                let v = v.narrow(2, 0, visible)?;
                let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                att.matmul(&v)?.reshape((b, nh, 1, hd))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let y = if rows.len() == 1 {
            rows.into_iter()
                .next()
                .ok_or_else(|| InferenceError::BadRequest("empty input".into()))?
        } else {
            Tensor::cat(&rows, 2)?
        };
        let y = y.transpose(1, 2)?.reshape((b, seq, n_embd))?;
        Ok(w.wo.forward(&y)?)
    }
}

/// Index of the largest value in each row of `(seq, vocab)` logits (first on ties).
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_vec1::<u32>()?)
}
