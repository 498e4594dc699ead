//! The shard executor: runs transformer blocks `[start, end)` of a model of any family of
//! [`crate::models`] over a batch of consecutive positions, with a per-session KV cache that can be truncated to
//! any position (rejected speculative drafts, failover replay). The first shard embeds
//! token ids; the last applies the final norm and LM head to every position.
//! [`ShardExecutor::forward_rows`] runs several sessions' positions in one pass (the
//! continuous batching of [`crate::batcher`]): the matrix products take all sessions'
//! rows at once and each row attends over its own session's cache.
//!
//! A session's cache holds `2 × kv_heads × head_dim` f32 values per position and layer,
//! up to the context length: for SmolLM2-135M (3 kv heads of 64, 30 layers) 46 KB per
//! position over the whole model, so at most 184 MiB for a session at the full 4096
//! positions; a shard keeps at most [`crate::shard::DEFAULT_MAX_SESSIONS`] sessions.
//!
//! The block runs on plain f32 buffers with the fused quantized kernels of
//! [`crate::kernels`]: the query, key and value projections are one stacked matrix, and so
//! are the gate and up projections, so a block is four matrix products over all the
//! batch's positions, each reading the weights once. The arithmetic follows candle's
//! `quantized_llama` (the test suite's oracle) operation by operation — the quantized
//! products, norms, rotary embedding and SwiGLU give candle's bits — except attention,
//! whose dot products are summed in a different order, so logits differ from the oracle's
//! in their last bits. Attention is evaluated row by row over each row's visible keys,
//! which makes every position's result independent of the batch it was computed in — the
//! property speculative verification and failover replay need to reproduce plain greedy
//! decoding exactly.
//!
//! The families' optional parts are applied where llama.cpp applies them: QKV biases right
//! after the projection, per-head q/k RMS norms before the rotation, and a sliding window
//! as the range of keys a row attends to. Without them the block is the Llama block.

use crate::config::ModelConfig;
use crate::error::{InferenceError, Result};
use crate::kernels::ops::{self, AttnShape};
use crate::kernels::QuantMatrix;
use crate::weights::{LayerWeights, ModelWeights};
use candle_core::{DType, Device, Tensor, D};
use std::sync::Arc;

/// One layer's cached keys and values, position-major (`kv_heads × head_dim` per position).
#[derive(Debug, Default, Clone)]
struct LayerCache {
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The keys and values one session has produced in each of the shard's layers.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// A cache for a shard with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); num_layers],
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
        for layer in self.layers.iter_mut() {
            let per_position = layer.keys.len() / self.len;
            layer.keys.truncate(pos * per_position);
            layer.values.truncate(pos * per_position);
        }
        self.len = pos;
        Ok(())
    }

    /// Each layer's keys and values of positions `from..to` (`kv_dim` values per
    /// position), for the prefix cache.
    pub(crate) fn rows(&self, from: usize, to: usize, kv_dim: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
        let (a, b) = (from * kv_dim, to.min(self.len) * kv_dim);
        self.layers
            .iter()
            .map(|l| (l.keys[a..b].to_vec(), l.values[a..b].to_vec()))
            .collect()
    }

    /// Appends `positions` positions whose keys and values in each layer are `kv`.
    pub(crate) fn append(&mut self, kv: &[(Vec<f32>, Vec<f32>)], positions: usize) -> Result<()> {
        if kv.len() != self.layers.len() {
            return Err(InferenceError::BadRequest(
                "cached keys and values for another shard".into(),
            ));
        }
        for (layer, (k, v)) in self.layers.iter_mut().zip(kv) {
            layer.keys.extend_from_slice(k);
            layer.values.extend_from_slice(v);
        }
        self.len += positions;
        Ok(())
    }
}

/// Input to a shard: token ids (first shard) or hidden states `(1, seq, hidden)`.
#[derive(Debug, Clone)]
pub enum ExecInput<'a> {
    Tokens(&'a [u32]),
    Hidden(&'a Tensor),
}

/// One session's positions `start..start + seq` in a batched pass
/// ([`ShardExecutor::forward_rows`]).
#[derive(Debug)]
pub struct Segment<'c> {
    pub cache: &'c mut KvCache,
    pub start: usize,
    pub seq: usize,
}

/// One block's weights in the kernels' formats.
#[derive(Debug)]
struct PackedLayer {
    /// Query, key and value projections stacked: `q_dim + 2 * kv_dim` rows.
    qkv: QuantMatrix,
    wo: QuantMatrix,
    /// Gate and up projections stacked: `2 * ffn` rows.
    gate_up: QuantMatrix,
    down: QuantMatrix,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// Stacked query, key and value biases (`q_dim + 2 * kv_dim`).
    qkv_bias: Option<Vec<f32>>,
    /// Per-head RMS-norm weights of queries and keys (`head_dim`).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
}

fn vector(t: &Option<Tensor>) -> Result<Option<Vec<f32>>> {
    Ok(match t {
        Some(t) => Some(t.to_dtype(DType::F32)?.to_vec1()?),
        None => None,
    })
}

impl PackedLayer {
    fn new(w: &LayerWeights) -> Result<Self> {
        Ok(Self {
            qkv: QuantMatrix::stacked(&[&w.wq, &w.wk, &w.wv])?,
            wo: QuantMatrix::new(&w.wo)?,
            gate_up: QuantMatrix::stacked(&[&w.w_gate, &w.w_up])?,
            down: QuantMatrix::new(&w.w_down)?,
            attn_norm: w.attn_norm.to_dtype(DType::F32)?.to_vec1()?,
            ffn_norm: w.ffn_norm.to_dtype(DType::F32)?.to_vec1()?,
            qkv_bias: vector(&w.extras.qkv_bias)?,
            q_norm: vector(&w.extras.q_norm)?,
            k_norm: vector(&w.extras.k_norm)?,
        })
    }
}

/// The final norm and LM head of the last shard.
#[derive(Debug)]
struct PackedHead {
    norm: Vec<f32>,
    matrix: QuantMatrix,
}

/// Runs one shard's layers.
#[derive(Debug, Clone)]
pub struct ShardExecutor {
    weights: ModelWeights,
    layers: Arc<Vec<PackedLayer>>,
    head: Option<Arc<PackedHead>>,
    /// Rotary tables, `max_seq_len × head_dim / 2`.
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    /// A cheating worker's attention window `(sink, window)` (see
    /// [`crate::fault::Fault::AttentionWindow`]); `None` attends to every position.
    #[cfg(feature = "fault-injection")]
    window: Option<(usize, usize)>,
}

/// Buffers of one forward pass over `seq` positions.
struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate_up: Vec<f32>,
    ffn: Vec<f32>,
}

impl ShardExecutor {
    pub fn new(weights: ModelWeights) -> Result<Self> {
        let (cos, sin) = crate::models::rope::tables(&weights.config, weights.config.max_seq_len)?;
        let layers = weights
            .layers
            .iter()
            .map(|l| PackedLayer::new(l))
            .collect::<Result<Vec<_>>>()?;
        check_shapes(&weights.config, &layers)?;
        let head = match (&weights.norm, &weights.lm_head) {
            (Some(norm), Some(head)) => Some(Arc::new(PackedHead {
                norm: norm.to_dtype(DType::F32)?.to_vec1()?,
                matrix: QuantMatrix::new(head)?,
            })),
            _ => None,
        };
        Ok(Self {
            weights,
            layers: Arc::new(layers),
            head,
            cos: Arc::new(cos),
            sin: Arc::new(sin),
            #[cfg(feature = "fault-injection")]
            window: None,
        })
    }

    /// The same executor attending only to the first `sink` and the last `window`
    /// positions (a cheat, for tests and benches).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn with_attention_window(mut self, sink: usize, window: usize) -> Self {
        self.window = Some((sink, window));
        self
    }

    /// Attention of one query row over the first `visible` cached positions.
    fn attend(
        &self,
        shape: AttnShape,
        q: &[f32],
        kv: &LayerCache,
        visible: usize,
        out: &mut [f32],
    ) {
        #[cfg(feature = "fault-injection")]
        if let Some((sink, window)) = self.window {
            if visible > sink + window {
                let kv_dim = shape.kv_heads * shape.head_dim;
                let kept = |v: &[f32]| -> Vec<f32> {
                    let mut kept = v[..sink * kv_dim].to_vec();
                    kept.extend_from_slice(&v[(visible - window) * kv_dim..visible * kv_dim]);
                    kept
                };
                let (keys, values) = (kept(&kv.keys), kept(&kv.values));
                ops::attend(shape, q, &keys, &values, sink + window, out);
                return;
            }
        }
        let lo = self
            .weights
            .config
            .sliding_window
            .map_or(0, |w| visible.saturating_sub(w));
        let at = lo * shape.kv_heads * shape.head_dim;
        ops::attend(
            shape,
            q,
            &kv.keys[at..],
            &kv.values[at..],
            visible - lo,
            out,
        );
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

    /// The token embeddings of `tokens`, position-major (first shard only).
    pub(crate) fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let cfg = &self.weights.config;
        let emb = self.weights.embedding.as_ref().ok_or_else(|| {
            InferenceError::BadRequest("token input sent to a shard that is not first".into())
        })?;
        let mut x = Vec::with_capacity(tokens.len() * cfg.hidden_size);
        for &t in tokens {
            if t as usize >= cfg.vocab_size {
                return Err(InferenceError::BadRequest(format!(
                    "token id {t} is outside the vocabulary of {}",
                    cfg.vocab_size
                )));
            }
            x.extend(
                emb.get(t as usize)?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(x)
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
        let mut x = self.input_rows(input)?;
        let seq = x.len() / self.weights.config.hidden_size;
        self.check_segment(cache, start, seq)?;
        self.forward_rows(&mut [Segment { cache, start, seq }], &mut x)?;
        Ok(Tensor::from_vec(
            x,
            (1, seq, self.weights.config.hidden_size),
            &Device::Cpu,
        )?)
    }

    /// The input rows of `input`, position-major f32 (embeddings for tokens).
    pub fn input_rows(&self, input: ExecInput<'_>) -> Result<Vec<f32>> {
        let cfg = &self.weights.config;
        match input {
            ExecInput::Tokens(tokens) => self.embed(tokens),
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
                Ok(h.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            }
        }
    }

    /// Checks that `seq` positions from `start` can run on `cache` (no gap before
    /// `start`, within the context, a cache of this shard).
    pub fn check_segment(&self, cache: &KvCache, start: usize, seq: usize) -> Result<()> {
        let cfg = &self.weights.config;
        if cache.len() < start {
            return Err(InferenceError::CacheGap {
                session: String::new(),
                have: cache.len(),
                start,
            });
        }
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
        if cache.layers.len() != self.layers.len() {
            return Err(InferenceError::BadRequest(
                "cache made for a different shard".into(),
            ));
        }
        Ok(())
    }

    /// Runs the shard's layers over several sessions' positions at once (continuous
    /// batching): `x` holds every segment's input rows, one segment after the other, and
    /// is replaced by their outputs. Each weight matrix is read once per layer for all
    /// rows; each row attends over its own session's cache only. Every segment must have
    /// passed [`Self::check_segment`]; its cache is truncated to its `start` first. A
    /// row's result is the same bits whatever else is in the batch (see the module doc).
    pub fn forward_rows(&self, segments: &mut [Segment<'_>], x: &mut [f32]) -> Result<()> {
        let cfg = &self.weights.config;
        let rows: usize = segments.iter().map(|s| s.seq).sum();
        if rows == 0 || x.len() != rows * cfg.hidden_size {
            return Err(InferenceError::BadRequest(format!(
                "a batch of {} values for {rows} positions of width {}",
                x.len(),
                cfg.hidden_size
            )));
        }
        for seg in segments.iter_mut() {
            seg.cache.truncate(seg.start)?;
        }
        let mut scratch = Scratch {
            normed: vec![0.0; rows * cfg.hidden_size],
            qkv: Vec::new(),
            attn: vec![0.0; rows * cfg.num_heads * cfg.head_dim],
            proj: vec![0.0; rows * cfg.hidden_size],
            gate_up: Vec::new(),
            ffn: Vec::new(),
        };
        crate::kernels::in_pool(|| {
            for (l, layer) in self.layers.iter().enumerate() {
                let mut kvs: Vec<(&mut LayerCache, usize, usize)> = segments
                    .iter_mut()
                    .map(|s| (&mut s.cache.layers[l], s.start, s.seq))
                    .collect();
                self.block(layer, &mut kvs, x, rows, &mut scratch);
            }
        });
        for seg in segments.iter_mut() {
            seg.cache.len = seg.start + seg.seq;
        }
        Ok(())
    }

    /// Final norm and LM head over every position: `(1, seq, hidden)` -> `(seq, vocab)`.
    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.head.as_ref().ok_or_else(|| {
            InferenceError::BadRequest("logits requested from a shard that is not last".into())
        })?;
        let n = self.weights.config.hidden_size;
        let dims = hidden.dims();
        if dims.len() != 3 || dims[0] != 1 || dims[2] != n {
            return Err(InferenceError::BadRequest(format!(
                "hidden states of shape {dims:?}, expected (1, seq, {n})"
            )));
        }
        let x = hidden
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let seq = dims[1];
        let eps = self.weights.config.rms_norm_eps as f32;
        let mut normed = vec![0f32; x.len()];
        for (x, o) in x.chunks_exact(n).zip(normed.chunks_exact_mut(n)) {
            ops::rms_norm(x, &head.norm, eps, o);
        }
        let vocab = head.matrix.rows();
        let mut logits = vec![0f32; seq * vocab];
        head.matrix.matmul(&normed, seq, &mut logits);
        Ok(Tensor::from_vec(logits, (seq, vocab), &Device::Cpu)?)
    }

    /// Bias, q/k norms and rotation of one position's stacked query, key and value row.
    fn position_qk(&self, w: &PackedLayer, qkv: &mut [f32], pos: usize) {
        let cfg = &self.weights.config;
        let hd = cfg.head_dim;
        let (q_dim, kv_dim) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        if let Some(bias) = &w.qkv_bias {
            for (x, b) in qkv.iter_mut().zip(bias) {
                *x += b;
            }
        }
        let eps = cfg.rms_norm_eps as f32;
        let mut normed = [0f32; MAX_HEAD_DIM];
        let (q, k) = qkv[..q_dim + kv_dim].split_at_mut(q_dim);
        for (part, norm) in [(q, &w.q_norm), (k, &w.k_norm)] {
            if let Some(weight) = norm {
                for head in part.chunks_exact_mut(hd) {
                    ops::rms_norm(head, weight, eps, &mut normed[..hd]);
                    head.copy_from_slice(&normed[..hd]);
                }
            }
        }
        let half = hd / 2;
        let (cos, sin) = (
            &self.cos[pos * half..(pos + 1) * half],
            &self.sin[pos * half..(pos + 1) * half],
        );
        for head in qkv[..q_dim + kv_dim].chunks_exact_mut(hd) {
            ops::rope(head, cos, sin, cfg.rope_interleaved);
        }
    }

    /// One block over a batch: `kvs` holds each segment's layer cache, first position and
    /// length, in the order of their rows in `x`.
    fn block(
        &self,
        w: &PackedLayer,
        kvs: &mut [(&mut LayerCache, usize, usize)],
        x: &mut [f32],
        rows: usize,
        s: &mut Scratch,
    ) {
        let cfg = &self.weights.config;
        let eps = cfg.rms_norm_eps as f32;
        let n = cfg.hidden_size;
        let hd = cfg.head_dim;
        let (q_dim, kv_dim) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        let row = q_dim + 2 * kv_dim;

        for (x, o) in x.chunks_exact(n).zip(s.normed.chunks_exact_mut(n)) {
            ops::rms_norm(x, &w.attn_norm, eps, o);
        }
        s.qkv.resize(rows * row, 0.0);
        w.qkv.matmul(&s.normed, rows, &mut s.qkv);
        let shape = AttnShape {
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: hd,
        };
        let mut first = 0;
        for (kv, start, seq) in kvs.iter_mut() {
            let (start, seq) = (*start, *seq);
            let qkvs = &mut s.qkv[first * row..(first + seq) * row];
            for (i, qkv) in qkvs.chunks_exact_mut(row).enumerate() {
                self.position_qk(w, qkv, start + i);
                kv.keys.extend_from_slice(&qkv[q_dim..q_dim + kv_dim]);
                kv.values.extend_from_slice(&qkv[q_dim + kv_dim..]);
            }
            let outs = &mut s.attn[first * q_dim..(first + seq) * q_dim];
            for (i, (qkv, out)) in qkvs
                .chunks_exact(row)
                .zip(outs.chunks_exact_mut(q_dim))
                .enumerate()
            {
                self.attend(shape, &qkv[..q_dim], kv, start + i + 1, out);
            }
            first += seq;
        }
        w.wo.matmul(&s.attn, rows, &mut s.proj);
        for (x, p) in x.iter_mut().zip(&s.proj) {
            *x += p;
        }

        for (x, o) in x.chunks_exact(n).zip(s.normed.chunks_exact_mut(n)) {
            ops::rms_norm(x, &w.ffn_norm, eps, o);
        }
        let ffn = w.gate_up.rows() / 2;
        s.gate_up.resize(rows * 2 * ffn, 0.0);
        w.gate_up.matmul(&s.normed, rows, &mut s.gate_up);
        s.ffn.clear();
        for gu in s.gate_up.chunks_exact_mut(2 * ffn) {
            let (gate, up) = gu.split_at_mut(ffn);
            ops::silu_mul(gate, up);
            s.ffn.extend_from_slice(gate);
        }
        w.down.matmul(&s.ffn, rows, &mut s.proj);
        for (x, p) in x.iter_mut().zip(&s.proj) {
            *x += p;
        }
    }
}

/// Checks the packed layers against the configuration (a file's metadata and tensors
/// must agree before any row is computed).
fn check_shapes(cfg: &ModelConfig, layers: &[PackedLayer]) -> Result<()> {
    let hd = cfg.head_dim;
    let (q_dim, kv_dim) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
    if hd > MAX_HEAD_DIM {
        return Err(InferenceError::BadRequest(format!(
            "head size {hd} exceeds the supported {MAX_HEAD_DIM}"
        )));
    }
    for (i, l) in layers.iter().enumerate() {
        let bad = l.qkv.rows() != q_dim + 2 * kv_dim
            || l.qkv.cols() != cfg.hidden_size
            || l.wo.cols() != q_dim
            || l.wo.rows() != cfg.hidden_size
            || l.qkv_bias
                .as_ref()
                .is_some_and(|b| b.len() != q_dim + 2 * kv_dim)
            || [&l.q_norm, &l.k_norm]
                .iter()
                .any(|n| n.as_ref().is_some_and(|n| n.len() != hd));
        if bad {
            return Err(InferenceError::BadRequest(format!(
                "layer {i}'s attention tensors do not match the configuration \
                 ({} heads, {} kv heads of {hd}, hidden {})",
                cfg.num_heads, cfg.num_kv_heads, cfg.hidden_size
            )));
        }
    }
    Ok(())
}

/// Largest head size the executor handles (its per-head scratch).
const MAX_HEAD_DIM: usize = 512;

/// Index of the largest value in each row of `(seq, vocab)` logits (first on ties).
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_vec1::<u32>()?)
}
