//! LoRA adapters on a shard's projections: for every layer of the shard's range and every
//! targeted projection `W` (out x in), a pair `A` (rank x in) and `B` (out x rank) so the
//! layer computes `x W^T + (alpha / rank) x A^T B^T`. `A` starts small and random (from a
//! seed every holder of the shard agrees on), `B` at zero, so a fresh adapter leaves the
//! model unchanged.
//!
//! An adapter is held as one flat `f32` vector (`theta`) in a fixed layout: DiLoCo's outer
//! step, the robust aggregation and the pseudo-gradient codec all work on that vector.
//! [`merge_adapter`] folds an adapter into the frozen weights (`W + scale B A`) so the
//! unchanged inference executor serves the trained model.

use crate::error::{Result, TrainingError};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Tensor};
use neuroshard_inference::weights::LayerWeights;
use neuroshard_inference::{ModelConfig, ModelWeights};
use neuroshard_primitives::{blake2_256, Hash};
use parity_scale_codec::Encode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;
use std::sync::Arc;

/// One of the seven linear projections of a Llama block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode)]
pub enum Projection {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Projection {
    /// Every projection, in layout order.
    pub const ALL: [Projection; 7] = [
        Projection::Q,
        Projection::K,
        Projection::V,
        Projection::O,
        Projection::Gate,
        Projection::Up,
        Projection::Down,
    ];

    /// `(out, in)` of the projection's weight matrix.
    pub fn shape(&self, c: &ModelConfig) -> (usize, usize) {
        let kv = c.num_kv_heads * c.head_dim;
        // Queries need not be `hidden` wide (Qwen3's head size is its own).
        let q = c.num_heads * c.head_dim;
        match self {
            Projection::Q => (q, c.hidden_size),
            Projection::O => (c.hidden_size, q),
            Projection::K | Projection::V => (kv, c.hidden_size),
            Projection::Gate | Projection::Up => (c.intermediate_size, c.hidden_size),
            Projection::Down => (c.hidden_size, c.intermediate_size),
        }
    }

    /// The projection's matrix in a layer's weights.
    pub fn of<'a>(&self, w: &'a LayerWeights) -> &'a QMatMul {
        match self {
            Projection::Q => &w.wq,
            Projection::K => &w.wk,
            Projection::V => &w.wv,
            Projection::O => &w.wo,
            Projection::Gate => &w.w_gate,
            Projection::Up => &w.w_up,
            Projection::Down => &w.w_down,
        }
    }
}

/// Hyper-parameters of an adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f32,
    /// Projections that get an adapter (the others stay frozen as they are).
    pub targets: Vec<Projection>,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16 on every attention and MLP projection.
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: Projection::ALL.to_vec(),
        }
    }
}

impl LoraConfig {
    /// `alpha / rank`, the factor the low-rank update is scaled by.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }
}

/// Where one `(A, B)` pair lives in the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSlot {
    pub layer: usize,
    pub projection: Projection,
    /// `(out, in)` of the adapted weight.
    pub shape: (usize, usize),
    /// Offset of `A` (rank x in); `B` (out x rank) follows it.
    pub offset: usize,
}

/// The fixed layout of an adapter for layers `range` of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterLayout {
    pub config: LoraConfig,
    pub range: Range<usize>,
    pub slots: Vec<AdapterSlot>,
    pub len: usize,
}

impl AdapterLayout {
    pub fn new(model: &ModelConfig, range: Range<usize>, config: LoraConfig) -> Result<Self> {
        if config.rank == 0 || config.targets.is_empty() {
            return Err(TrainingError::BadConfig(
                "LoRA rank and target list must be non-empty".into(),
            ));
        }
        if range.start >= range.end || range.end > model.num_layers {
            return Err(TrainingError::BadConfig(format!(
                "layer range {}-{} is not inside 0-{}",
                range.start, range.end, model.num_layers
            )));
        }
        let mut slots = Vec::new();
        let mut offset = 0;
        for layer in range.clone() {
            for &projection in Projection::ALL.iter() {
                if !config.targets.contains(&projection) {
                    continue;
                }
                let shape = projection.shape(model);
                slots.push(AdapterSlot {
                    layer,
                    projection,
                    shape,
                    offset,
                });
                offset += config.rank * (shape.0 + shape.1);
            }
        }
        Ok(Self {
            config,
            range,
            slots,
            len: offset,
        })
    }

    /// The slot adapting `projection` of `layer`, if targeted.
    pub fn slot(&self, layer: usize, projection: Projection) -> Option<&AdapterSlot> {
        self.slots
            .iter()
            .find(|s| s.layer == layer && s.projection == projection)
    }

    /// A fresh adapter: `A` uniform in `+-1/sqrt(in)` from `seed`, `B` zero.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut theta = vec![0f32; self.len];
        let r = self.config.rank;
        for s in &self.slots {
            let bound = 1.0 / (s.shape.1 as f32).sqrt();
            for v in &mut theta[s.offset..s.offset + r * s.shape.1] {
                *v = rng.gen_range(-bound..bound);
            }
        }
        theta
    }

    /// `(A, B)` of a slot as tensors read from `theta`.
    pub fn pair(&self, theta: &[f32], slot: &AdapterSlot) -> Result<(Tensor, Tensor)> {
        let r = self.config.rank;
        let (out, inp) = slot.shape;
        let a_len = r * inp;
        let end = slot.offset + a_len + out * r;
        let data = theta.get(slot.offset..end).ok_or_else(|| {
            TrainingError::BadConfig(format!(
                "adapter of {} values is shorter than its layout ({})",
                theta.len(),
                self.len
            ))
        })?;
        let a = Tensor::from_slice(&data[..a_len], (r, inp), &Device::Cpu)?;
        let b = Tensor::from_slice(&data[a_len..], (out, r), &Device::Cpu)?;
        Ok((a, b))
    }

    /// The adapter version: blake2-256 over the layout and the values' bytes.
    pub fn hash(&self, theta: &[f32]) -> Hash {
        let mut bytes = (
            self.config.rank as u32,
            self.config.alpha.to_bits(),
            &self.config.targets,
            self.range.start as u32,
            self.range.end as u32,
            self.len as u64,
        )
            .encode();
        bytes.reserve(theta.len() * 4);
        for v in theta {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        blake2_256(&bytes)
    }
}

/// A projection's frozen weight as an f32 `(out, in)` tensor (quantized ones dequantized).
pub fn dequantized(m: &QMatMul) -> Result<Tensor> {
    Ok(match m {
        QMatMul::QTensor(q) => q.dequantize(&Device::Cpu)?,
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32)?,
    })
}

/// `weights` with `theta` merged into the adapted projections of the layers both cover:
/// each becomes the f32 matrix `W + scale B A`; everything else is shared unchanged.
/// `weights` may be the whole model or any slice of it.
pub fn merge_adapter(
    weights: &ModelWeights,
    layout: &AdapterLayout,
    theta: &[f32],
) -> Result<ModelWeights> {
    if theta.len() != layout.len {
        return Err(TrainingError::BadConfig(format!(
            "adapter has {} values, its layout {}",
            theta.len(),
            layout.len
        )));
    }
    let scale = f64::from(layout.config.scale());
    let mut layers = weights.layers.clone();
    for (i, layer) in layers.iter_mut().enumerate() {
        let index = weights.range.start + i;
        if !layout.range.contains(&index) {
            continue;
        }
        let merged = |p: Projection| -> Result<QMatMul> {
            let m = p.of(layer);
            match layout.slot(index, p) {
                None => Ok(m.clone()),
                Some(slot) => {
                    let (a, b) = layout.pair(theta, slot)?;
                    let w = (dequantized(m)? + (b.matmul(&a)? * scale)?)?;
                    Ok(QMatMul::Tensor(w))
                }
            }
        };
        *layer = Arc::new(LayerWeights {
            wq: merged(Projection::Q)?,
            wk: merged(Projection::K)?,
            wv: merged(Projection::V)?,
            wo: merged(Projection::O)?,
            w_gate: merged(Projection::Gate)?,
            w_up: merged(Projection::Up)?,
            w_down: merged(Projection::Down)?,
            attn_norm: layer.attn_norm.clone(),
            ffn_norm: layer.ffn_norm.clone(),
            extras: layer.extras.clone(),
        });
    }
    Ok(ModelWeights {
        layers,
        ..weights.clone()
    })
}
