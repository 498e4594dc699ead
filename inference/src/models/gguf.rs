//! Loading a layer range of a GGUF file of any family, by llama.cpp's standard tensor
//! names (`token_embd`, `blk.N.attn_q`, ..., `output_norm`, `output`, `rope_freqs`).
//! Matrices stay in their format for the kernels; norms, biases and the embedding table
//! are dequantized to f32. Every tensor of the range the family does not use is an error
//! naming it, so a file is never run with part of its weights ignored. A model split
//! into parts loads from its first part (see [`super::parts`]).

use super::parts::GgufParts;
use super::{family, LayerParts, Part};
use crate::config::{md_string, ModelConfig};
use crate::error::{InferenceError, Result};
use crate::weights::{check_range, Precision};
use crate::weights::{matmul_from, AttnExtras, LayerWeights, ModelWeights};
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Reads tensors of one model and remembers which ones were used.
struct Tensors<'a> {
    file: GgufParts,
    path: &'a Path,
    precision: Precision,
    used: HashSet<String>,
}

impl Tensors<'_> {
    fn has(&self, name: &str) -> bool {
        self.file.has(name)
    }

    fn get(&mut self, name: &str) -> Result<QTensor> {
        self.used.insert(name.to_string());
        self.file.tensor(name)
    }

    /// A vector (norm, bias, factors) as f32.
    fn vector(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.dequantize(&Device::Cpu)?)
    }

    fn matrix(&mut self, name: &str) -> Result<QMatMul> {
        let q = self.get(name)?;
        matmul_from(self.path, name, q, self.precision)
    }

    /// The fused matrix `name` cut into consecutive runs of `rows` rows (quantized rows
    /// are independent, so each run is the bytes of its rows).
    fn split<const N: usize>(&mut self, name: &str, rows: [usize; N]) -> Result<[QMatMul; N]> {
        let q = self.get(name)?;
        let (total, cols) = q.shape().dims2()?;
        let dtype = q.dtype();
        let expected: usize = rows.iter().sum();
        if total != expected || !cols.is_multiple_of(dtype.block_size()) {
            return Err(InferenceError::bad_file(
                self.path,
                format!("tensor {name} is {total} x {cols}, expected {expected} rows"),
            ));
        }
        let row_bytes = cols / dtype.block_size() * dtype.type_size();
        let data = q.data()?;
        let mut at = 0;
        let mut out = Vec::with_capacity(N);
        for r in rows {
            let bytes = &data[at * row_bytes..(at + r) * row_bytes];
            let part = qtensor_from_ggml(dtype, bytes, vec![r, cols], &Device::Cpu)?;
            out.push(matmul_from(self.path, name, part, self.precision)?);
            at += r;
        }
        out.try_into()
            .map_err(|_| InferenceError::BadRequest(format!("{name}: {N} parts")))
    }

    /// The optional tensor `name` as the family's `part` says.
    fn part(&mut self, name: &str, part: Part) -> Result<Option<Tensor>> {
        match (part, self.has(name)) {
            (Part::Absent, _) | (Part::Optional, false) => Ok(None),
            (_, true) => Ok(Some(self.vector(name)?)),
            (Part::Required, false) => Err(InferenceError::bad_file(
                self.path,
                format!("tensor {name} missing"),
            )),
        }
    }
}

/// Loads layers `range` (all when `None`) of the GGUF file `path`.
pub fn load(
    path: &Path,
    range: Option<Range<usize>>,
    precision: Precision,
) -> Result<ModelWeights> {
    let file = GgufParts::open(path)?;
    let ct = file.metadata();
    let family = family(&md_string(ct, "general.architecture"), path)?;
    let mut config = ModelConfig::from_gguf(ct, path)?;
    let range = range.unwrap_or(0..config.num_layers);
    check_range(&range, &config)?;
    let mut t = Tensors {
        file,
        path,
        precision,
        used: HashSet::new(),
    };
    let dev = Device::Cpu;
    let first = range.start == 0;
    let last = range.end == config.num_layers;
    if t.has("rope_freqs.weight") {
        let factors: Vec<f32> = t
            .vector("rope_freqs.weight")?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        if factors.len() != config.head_dim / 2
            || factors.iter().any(|f| !f.is_finite() || *f == 0.0)
        {
            return Err(InferenceError::bad_file(
                path,
                "tensor rope_freqs.weight: bad frequency factors",
            ));
        }
        config.rope_freq_factors = Some(factors);
    }
    let embedding = if first {
        Some(t.get("token_embd.weight")?.dequantize(&dev)?)
    } else {
        None
    };
    let (norm, lm_head) = if last {
        let norm = t.vector("output_norm.weight")?;
        let name = if t.has("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        (Some(norm), Some(Arc::new(t.matrix(name)?)))
    } else {
        (None, None)
    };
    let parts = family.layer_parts();
    let layers = range
        .clone()
        .map(|i| load_layer(&mut t, i, parts, &config).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    check_all_used(&t, &range, config.num_layers)?;
    Ok(ModelWeights {
        config,
        range,
        embedding,
        layers,
        norm,
        lm_head,
    })
}

fn load_layer(
    t: &mut Tensors<'_>,
    i: usize,
    parts: LayerParts,
    c: &ModelConfig,
) -> Result<LayerWeights> {
    let name = |suffix: &str| format!("blk.{i}.{suffix}");
    let (q_dim, kv_dim) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let dims = [q_dim, kv_dim, kv_dim];
    let [wq, wk, wv] = if t.has(&name("attn_qkv.weight")) {
        // Fused, as llama.cpp's `create_tensor_qkv` accepts for every family.
        t.split(&name("attn_qkv.weight"), dims)?
    } else {
        let mut m = |p: &str| t.matrix(&name(&format!("{p}.weight")));
        [m("attn_q")?, m("attn_k")?, m("attn_v")?]
    };
    let [w_gate, w_up] = if parts.fused_gate_up {
        let ffn = c.intermediate_size;
        t.split(&name("ffn_up.weight"), [ffn, ffn])?
    } else {
        [
            t.matrix(&name("ffn_gate.weight"))?,
            t.matrix(&name("ffn_up.weight"))?,
        ]
    };
    let extras = AttnExtras {
        qkv_bias: qkv_bias(t, i, dims, parts.qkv_bias)?,
        q_norm: t.part(&name("attn_q_norm.weight"), parts.qk_norm)?,
        k_norm: t.part(&name("attn_k_norm.weight"), parts.qk_norm)?,
    };
    let (wo, w_down) = (
        t.matrix(&name("attn_output.weight"))?,
        t.matrix(&name("ffn_down.weight"))?,
    );
    Ok(LayerWeights::new(
        [wq, wk, wv, wo, w_gate, w_up, w_down],
        t.vector(&name("attn_norm.weight"))?,
        t.vector(&name("ffn_norm.weight"))?,
        extras,
    ))
}

/// Block `i`'s stacked query, key and value biases (`dims` long): the fused
/// `attn_qkv.bias`, or the separate ones, a missing one adding nothing (llama.cpp adds
/// the ones the file has).
fn qkv_bias(t: &mut Tensors<'_>, i: usize, dims: [usize; 3], part: Part) -> Result<Option<Tensor>> {
    let fused = format!("blk.{i}.attn_qkv.bias");
    if part != Part::Absent && t.has(&fused) {
        return Ok(Some(t.vector(&fused)?.to_dtype(DType::F32)?));
    }
    let mut biases = Vec::with_capacity(3);
    for p in ["attn_q", "attn_k", "attn_v"] {
        biases.push(t.part(&format!("blk.{i}.{p}.bias"), part)?);
    }
    if biases.iter().all(Option::is_none) {
        return Ok(None);
    }
    let filled = biases
        .into_iter()
        .zip(dims)
        .map(|(b, len)| match b {
            Some(b) => Ok(b.to_dtype(DType::F32)?),
            None => Ok(Tensor::zeros(len, DType::F32, &Device::Cpu)?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Tensor::cat(&filled, 0)?))
}

/// An error naming the first tensor of the loaded range the family left unused.
fn check_all_used(t: &Tensors<'_>, range: &Range<usize>, num_layers: usize) -> Result<()> {
    let in_range = |name: &str| -> bool {
        if let Some(rest) = name.strip_prefix("blk.") {
            let layer = rest.split('.').next().and_then(|n| n.parse::<usize>().ok());
            return layer.is_some_and(|l| range.contains(&l));
        }
        match name.split('.').next() {
            Some("token_embd") => range.start == 0,
            Some("output_norm") | Some("output") => range.end == num_layers,
            _ => true,
        }
    };
    let mut unused: Vec<&String> = t
        .file
        .tensor_names()
        .filter(|n| in_range(n) && !t.used.contains(*n))
        .collect();
    unused.sort();
    match unused.first() {
        None => Ok(()),
        Some(name) => Err(InferenceError::bad_file(
            t.path,
            format!(
                "tensor {name} is not used by this engine's {} family (running without it \
                 would compute something else)",
                md_string(t.file.metadata(), "general.architecture")
            ),
        )),
    }
}
