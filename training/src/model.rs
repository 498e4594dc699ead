//! The frozen model a shard trains its adapter against, with a forward pass candle's
//! autograd can differentiate.
//!
//! Layers before the shard never change and need no gradient, so their output (the
//! hidden states entering the shard) is computed once per text window by the inference
//! crate's own [`ShardExecutor`] on the quantized weights. The shard's layers and every
//! layer after it, the final norm and the LM head are dequantized to f32 tensors: the
//! loss is the language-model loss of the whole model (each node holds the whole GGUF
//! file), while only the shard's adapter is trainable. The fused candle kernels
//! (`rms_norm`, `rope`, `softmax_last_dim`) have no backward pass, so this forward uses
//! their composite forms; `tests` checks it against the executor to ~1e-4. The block is
//! the executor's for every family: QKV biases, per-head q/k norms, a sliding window
//! (in the mask) and the RoPE variants (the shared tables of
//! `neuroshard_inference::models::rope`).

use crate::error::{Result, TrainingError};
use crate::lora::{dequantized, AdapterLayout, Projection};
use candle_core::{Device, Tensor, D};
use neuroshard_inference::executor::ExecInput;
use neuroshard_inference::weights::LayerWeights;
use neuroshard_inference::{ModelConfig, ModelWeights, ShardExecutor};
use std::ops::Range;

/// One frozen block as f32 `(out, in)` matrices, with its family's optional parts.
struct FrozenLayer {
    projections: [Tensor; 7],
    attn_norm: Tensor,
    ffn_norm: Tensor,
    /// Query, key and value biases (Qwen2).
    biases: Option<[Tensor; 3]>,
    /// Per-head query and key RMS-norm weights (Qwen3).
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
}

impl FrozenLayer {
    fn new(w: &LayerWeights) -> Result<Self> {
        let p = |p: Projection| dequantized(p.of(w));
        let projections = [
            p(Projection::Q)?,
            p(Projection::K)?,
            p(Projection::V)?,
            p(Projection::O)?,
            p(Projection::Gate)?,
            p(Projection::Up)?,
            p(Projection::Down)?,
        ];
        let biases = match &w.extras.qkv_bias {
            None => None,
            Some(b) => {
                let (q, k) = (projections[0].dim(0)?, projections[1].dim(0)?);
                Some([
                    b.narrow(0, 0, q)?,
                    b.narrow(0, q, k)?,
                    b.narrow(0, q + k, k)?,
                ])
            }
        };
        Ok(Self {
            projections,
            attn_norm: w.attn_norm.clone(),
            ffn_norm: w.ffn_norm.clone(),
            biases,
            q_norm: w.extras.q_norm.clone(),
            k_norm: w.extras.k_norm.clone(),
        })
    }

    /// The bias of the query, key or value projection, if the family has them.
    fn bias(&self, p: Projection) -> Option<&Tensor> {
        let index = [Projection::Q, Projection::K, Projection::V]
            .iter()
            .position(|q| *q == p)?;
        self.biases.as_ref().map(|b| &b[index])
    }

    fn weight(&self, p: Projection) -> &Tensor {
        let index = Projection::ALL.iter().position(|q| *q == p).unwrap_or(0);
        &self.projections[index]
    }
}

/// The adapter's `(A, B)` tensors, aligned with its layout's slots (plain tensors to
/// evaluate, tensors of candle `Var`s to train).
pub struct AdapterTensors<'a> {
    pub layout: &'a AdapterLayout,
    pub pairs: Vec<(Tensor, Tensor)>,
}

impl<'a> AdapterTensors<'a> {
    /// Tensors holding `theta`'s values (no gradient tracking).
    pub fn from_theta(layout: &'a AdapterLayout, theta: &[f32]) -> Result<Self> {
        let pairs = layout
            .slots
            .iter()
            .map(|s| layout.pair(theta, s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layout, pairs })
    }

    fn pair(&self, layer: usize, p: Projection) -> Option<&(Tensor, Tensor)> {
        let index = self
            .layout
            .slots
            .iter()
            .position(|s| s.layer == layer && s.projection == p)?;
        self.pairs.get(index)
    }
}

/// Frozen weights of the whole model seen from one shard (layers `shard`).
pub struct FrozenModel {
    config: ModelConfig,
    shard: Range<usize>,
    /// Layers `[0, shard.start)` on the quantized weights (None for the first shard).
    prefix: Option<ShardExecutor>,
    /// The embedding, when the shard is the first one.
    embedding: Option<Tensor>,
    /// Layers `[shard.start, num_layers)`.
    layers: Vec<FrozenLayer>,
    norm: Tensor,
    lm_head: Tensor,
    cos: Tensor,
    sin: Tensor,
}

fn rotary_tables(c: &ModelConfig, len: usize) -> Result<(Tensor, Tensor)> {
    // The executor's tables (every RoPE variant), so positions rotate identically.
    let (cos, sin) = neuroshard_inference::models::rope::tables(c, len)?;
    let shape = (len, c.head_dim / 2);
    Ok((
        Tensor::from_vec(cos, shape, &Device::Cpu)?,
        Tensor::from_vec(sin, shape, &Device::Cpu)?,
    ))
}

impl FrozenModel {
    /// Prepares training for layers `shard` from the whole model's `weights`.
    pub fn new(weights: &ModelWeights, shard: Range<usize>) -> Result<Self> {
        let c = weights.config.clone();
        if weights.range != (0..c.num_layers) {
            return Err(TrainingError::BadConfig(
                "training needs the whole model's weights loaded".into(),
            ));
        }
        if shard.start >= shard.end || shard.end > c.num_layers {
            return Err(TrainingError::BadConfig(format!(
                "shard {}-{} is not inside 0-{}",
                shard.start, shard.end, c.num_layers
            )));
        }
        let prefix = if shard.start > 0 {
            Some(ShardExecutor::new(weights.slice(0..shard.start)?)?)
        } else {
            None
        };
        let missing = |what: &str| TrainingError::BadConfig(format!("model has no {what}"));
        let layers = weights.layers[shard.start..]
            .iter()
            .map(|l| FrozenLayer::new(l))
            .collect::<Result<Vec<_>>>()?;
        let (cos, sin) = rotary_tables(&c, c.max_seq_len)?;
        Ok(Self {
            embedding: if shard.start == 0 {
                Some(
                    weights
                        .embedding
                        .clone()
                        .ok_or_else(|| missing("embedding"))?,
                )
            } else {
                None
            },
            norm: weights.norm.clone().ok_or_else(|| missing("final norm"))?,
            lm_head: dequantized(
                weights
                    .lm_head
                    .as_deref()
                    .ok_or_else(|| missing("LM head"))?,
            )?,
            prefix,
            layers,
            cos,
            sin,
            shard,
            config: c,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn shard(&self) -> Range<usize> {
        self.shard.clone()
    }

    /// The hidden states `(seq, hidden)` entering the shard for `tokens` (constant while
    /// training, so callers compute them once per window).
    pub fn shard_input(&self, tokens: &[u32]) -> Result<Tensor> {
        if tokens.is_empty() || tokens.len() > self.config.max_seq_len {
            return Err(TrainingError::Dataset(format!(
                "window of {} tokens (limit {})",
                tokens.len(),
                self.config.max_seq_len
            )));
        }
        if let Some(bad) = tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(TrainingError::Dataset(format!(
                "token {bad} is outside the vocabulary"
            )));
        }
        match (&self.prefix, &self.embedding) {
            (Some(exec), _) => {
                let mut cache = exec.new_cache();
                let h = exec.forward(&mut cache, ExecInput::Tokens(tokens), 0)?;
                Ok(h.squeeze(0)?)
            }
            (None, Some(emb)) => {
                let ids = Tensor::new(tokens, &Device::Cpu)?;
                Ok(emb.index_select(&ids, 0)?)
            }
            (None, None) => Err(TrainingError::BadConfig("model has no embedding".into())),
        }
    }

    /// Logits `(batch * seq, vocab)` for shard inputs `(batch, seq, hidden)` with the
    /// adapter applied to the shard's layers.
    pub fn logits(&self, input: &Tensor, adapter: &AdapterTensors<'_>) -> Result<Tensor> {
        let (b, seq, hidden) = input.dims3()?;
        let mask = causal_mask(seq, self.config.sliding_window)?;
        let mut x = input.reshape((b * seq, hidden))?;
        for (i, layer) in self.layers.iter().enumerate() {
            let index = self.shard.start + i;
            x = self.block(layer, index, adapter, &x, b, seq, &mask)?;
        }
        let x = rms_norm(&x, &self.norm, self.config.rms_norm_eps)?;
        Ok(x.matmul(&self.lm_head.t()?)?)
    }

    /// Mean next-token cross-entropy of `windows` (each `seq + 1` tokens; inputs are
    /// their shard inputs `(batch, seq, hidden)`).
    pub fn loss(
        &self,
        input: &Tensor,
        targets: &Tensor,
        adapter: &AdapterTensors<'_>,
    ) -> Result<Tensor> {
        let logits = self.logits(input, adapter)?;
        let targets = targets.flatten_all()?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        w: &FrozenLayer,
        index: usize,
        adapter: &AdapterTensors<'_>,
        x: &Tensor,
        b: usize,
        seq: usize,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.config;
        let eps = c.rms_norm_eps;
        let lin = |p: Projection, x: &Tensor| -> Result<Tensor> {
            let y = x.matmul(&w.weight(p).t()?)?;
            Ok(match adapter.pair(index, p) {
                None => y,
                Some((a, bm)) => {
                    let low = x.matmul(&a.t()?)?.matmul(&bm.t()?)?;
                    (y + (low * f64::from(adapter.layout.config.scale()))?)?
                }
            })
        };
        let h = rms_norm(x, &w.attn_norm, eps)?;
        let (nh, nkv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        // Projection, bias, heads `(b, n, seq, hd)`, per-head norm: as the executor does.
        let heads = |p: Projection, n: usize, norm: Option<&Tensor>| -> Result<Tensor> {
            let mut t = lin(p, &h)?;
            if let Some(bias) = w.bias(p) {
                t = t.broadcast_add(bias)?;
            }
            let mut t = t.reshape((b, seq, n, hd))?.transpose(1, 2)?.contiguous()?;
            if let Some(norm) = norm {
                t = rms_norm(&t, norm, eps)?;
            }
            Ok(t)
        };
        let q = self.rope(&heads(Projection::Q, nh, w.q_norm.as_ref())?)?;
        let k = self.rope(&heads(Projection::K, nkv, w.k_norm.as_ref())?)?;
        let v = heads(Projection::V, nkv, None)?;
        let group = nh / nkv;
        let repeat = |t: Tensor| -> Result<Tensor> {
            if group == 1 {
                return Ok(t);
            }
            Ok(t.unsqueeze(2)?
                .broadcast_as((b, nkv, group, seq, hd))?
                .contiguous()?
                .reshape((b, nh, seq, hd))?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let att = candle_nn::ops::softmax(&att.broadcast_add(mask)?, D::Minus1)?;
        let y = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * seq, nh * hd))?;
        let x = (lin(Projection::O, &y)? + x)?;
        let h = rms_norm(&x, &w.ffn_norm, eps)?;
        let gated = (lin(Projection::Gate, &h)?.silu()? * lin(Projection::Up, &h)?)?;
        Ok((lin(Projection::Down, &gated)? + x)?)
    }

    fn rope(&self, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, 0, seq)?;
        let sin = self.sin.narrow(0, 0, seq)?;
        Ok(if self.config.rope_interleaved {
            candle_nn::rotary_emb::rope_i_slow(x, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope_slow(x, &cos, &sin)?
        })
    }
}

fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm_slow(x, alpha, eps as f32)?)
}

/// `(seq, seq)` additive mask: 0 where row `i` sees column `j` (`j <= i`, and within
/// the sliding window when the model has one), -inf elsewhere.
fn causal_mask(seq: usize, window: Option<usize>) -> Result<Tensor> {
    let sees = move |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let data: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if sees(i, j) { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(data, (seq, seq), &Device::Cpu)?)
}
