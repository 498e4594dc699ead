//! The model seam: one module per architecture family, in the style of
//! candle-transformers' one-file models. A family reads its configuration from the GGUF
//! metadata under its own key prefix (`qwen2.embedding_length`, ...), says which optional
//! per-layer tensors it has (QKV biases, per-head q/k norms) and which rotary convention
//! it uses; [`gguf`] loads a layer range by llama.cpp's standard tensor names, and the
//! shard executor runs the layer-range forward. A new family is one file plus a line in
//! [`FAMILIES`].
//!
//! The supported families share one decoder block (RMS norm, attention with GQA, SwiGLU),
//! so the forward is one implementation whose optional parts — QKV bias, q/k norms, a
//! sliding window, the RoPE variant of [`rope`] — are data the family declares, not code
//! copied per family; fused projections (`attn_qkv`, Phi-3's gate-and-up `ffn_up`) are
//! cut apart at load. A family whose block differs in structure (Gemma's extra norms,
//! soft-capping and GELU) would add its variant of the block next to it.
//!
//! Nothing a file carries is dropped silently: a tensor in the loaded range that the
//! family does not use, or a metadata feature it does not implement, is a load error.

pub mod gguf;
mod llama;
mod mistral;
pub mod parts;
mod phi3;
mod qwen2;
mod qwen3;
pub mod rope;

use crate::config::{md_string, md_u32_or, ModelConfig, MAX_SEQ_LEN};
use crate::error::{InferenceError, Result};
use candle_core::quantized::gguf_file::{self, Value};
use rope::{RopeScaling, ScalingKind};
use std::path::Path;

/// Whether a family's layers carry an optional tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Never: the tensor in a file is an error (it would be ignored).
    Absent,
    /// Used when the file has it (llama.cpp's `TENSOR_NOT_REQUIRED`).
    Optional,
    /// The family needs it.
    Required,
}

/// The per-layer tensors a family has beyond the Llama block.
#[derive(Clone, Copy, Debug)]
pub struct LayerParts {
    /// `blk.N.attn_{q,k,v}.bias`.
    pub qkv_bias: Part,
    /// `blk.N.attn_{q,k}_norm.weight`: RMS norms over each head's query and key.
    pub qk_norm: Part,
    /// `blk.N.ffn_up.weight` holds the gate and up projections, in that order (Phi-3).
    pub fused_gate_up: bool,
}

/// One architecture family.
pub trait Family: Sync {
    /// The `general.architecture` values this family reads.
    fn architectures(&self) -> &'static [&'static str];

    /// The hyper-parameters of a file of this family.
    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig>;

    /// The optional tensors of its layers.
    fn layer_parts(&self) -> LayerParts;
}

/// Every supported family, in the order the error message lists them.
pub static FAMILIES: &[&dyn Family] = &[
    &llama::LLAMA,
    &mistral::Mistral,
    &phi3::PHI3,
    &qwen2::QWEN2,
    &qwen3::QWEN3,
];

/// A family that is the shared block with its declared parts, configured by the common
/// llama-like keys under its prefix (the families without keys of their own).
pub struct LlamaLike {
    pub architectures: &'static [&'static str],
    pub order: RopeOrder,
    pub parts: LayerParts,
}

impl Family for LlamaLike {
    fn architectures(&self) -> &'static [&'static str] {
        self.architectures
    }

    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig> {
        llama_like_config(md, self.order)
    }

    fn layer_parts(&self) -> LayerParts {
        self.parts
    }
}

/// The architecture names the engine runs.
pub fn supported_architectures() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.architectures())
        .copied()
        .collect()
}

/// The family of the file whose `general.architecture` is `arch`.
pub fn family(arch: &str, path: &Path) -> Result<&'static dyn Family> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| f.architectures().contains(&arch))
        .ok_or_else(|| {
            InferenceError::bad_file(
                path,
                format!(
                    "architecture {arch:?} is not supported (supported: {})",
                    supported_architectures().join(", ")
                ),
            )
        })
}

/// The configuration of a GGUF file, by its family.
pub fn config_from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<ModelConfig> {
    let arch = md_string(ct, "general.architecture");
    let md = Metadata {
        ct,
        path,
        arch: &arch,
    };
    family(&arch, path)?.config(&md)
}

/// A GGUF file's metadata seen through its architecture's key prefix.
pub struct Metadata<'a> {
    pub ct: &'a gguf_file::Content,
    pub path: &'a Path,
    pub arch: &'a str,
}

impl Metadata<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        self.ct.metadata.get(&format!("{}.{key}", self.arch))
    }

    fn bad(&self, msg: String) -> InferenceError {
        InferenceError::bad_file(self.path, msg)
    }

    /// `{arch}.{key}` as a u32, if present (an error if present with another type).
    pub fn u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.value(key)
            .map(|v| v.to_u32())
            .transpose()
            .map_err(|e| self.bad(format!("metadata key {}.{key}: {e}", self.arch)))
    }

    /// `{arch}.{key}` as a u32.
    pub fn u32(&self, key: &str) -> Result<u32> {
        self.u32_opt(key)?
            .ok_or_else(|| self.bad(format!("metadata key {}.{key} missing", self.arch)))
    }

    /// `{arch}.{key}` as an f32, if present.
    pub fn f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.value(key)
            .map(|v| v.to_f32())
            .transpose()
            .map_err(|e| self.bad(format!("metadata key {}.{key}: {e}", self.arch)))
    }

    /// `{arch}.{key}` as a string, if present.
    pub fn string_opt(&self, key: &str) -> Result<Option<String>> {
        self.value(key)
            .map(|v| v.to_string().cloned())
            .transpose()
            .map_err(|e| self.bad(format!("metadata key {}.{key}: {e}", self.arch)))
    }

    /// An error unless `{arch}.{key}` is absent or zero: a feature the family does not
    /// implement must not be ignored.
    pub fn refuse(&self, key: &str) -> Result<()> {
        let set = match self.value(key) {
            None => false,
            Some(v) => v.to_f32().map(|x| x != 0.0).unwrap_or(true),
        };
        if set {
            return Err(self.bad(format!(
                "metadata key {}.{key} asks for a feature this engine does not implement",
                self.arch
            )));
        }
        Ok(())
    }
}

/// How a family rotates query and key pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeOrder {
    /// llama.cpp's `NORM`: adjacent values (2i, 2i+1).
    Norm,
    /// llama.cpp's `NEOX`: the two halves (i, i + d/2).
    Neox,
}

/// The configuration every llama-like family shares, read under the file's prefix.
pub fn llama_like_config(md: &Metadata<'_>, order: RopeOrder) -> Result<ModelConfig> {
    let hidden_size = md.u32("embedding_length")? as usize;
    let num_heads = md.u32("attention.head_count")? as usize;
    let num_kv_heads = md
        .u32_opt("attention.head_count_kv")?
        .unwrap_or(num_heads as u32) as usize;
    if num_heads == 0 || num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(md.bad(format!("bad head counts {num_heads}/{num_kv_heads}")));
    }
    let head_dim = md
        .u32_opt("attention.key_length")?
        .map_or(hidden_size / num_heads, |d| d as usize);
    let value_dim = md.u32_opt("attention.value_length")?.map(|d| d as usize);
    let rot_dims = md.u32_opt("rope.dimension_count")?.map(|d| d as usize);
    if head_dim == 0 || !head_dim.is_multiple_of(2) || value_dim.is_some_and(|v| v != head_dim) {
        return Err(md.bad(format!("unsupported head size {head_dim} / {value_dim:?}")));
    }
    if rot_dims.is_some_and(|r| r != head_dim) {
        return Err(md.bad(format!(
            "partial rotary embedding ({rot_dims:?} of {head_dim} dimensions) is not supported"
        )));
    }
    let rms_norm_eps = md
        .f32_opt("attention.layer_norm_rms_epsilon")?
        .ok_or_else(|| {
            md.bad(format!(
                "metadata key {}.attention.layer_norm_rms_epsilon missing",
                md.arch
            ))
        })?;
    let vocab_size = match md.ct.metadata.get("tokenizer.ggml.tokens") {
        Some(Value::Array(tokens)) => tokens.len(),
        _ => md.u32("vocab_size")? as usize,
    };
    let context = md
        .u32_opt("context_length")?
        .map_or(MAX_SEQ_LEN, |c| c as usize);
    md.refuse("attention.scale")?;
    let id = |key: &str, default: u32| md_u32_or(md.ct, key, default);
    Ok(ModelConfig {
        architecture: md.arch.to_string(),
        hidden_size,
        intermediate_size: md.u32("feed_forward_length")? as usize,
        num_layers: md.u32("block_count")? as usize,
        num_heads,
        num_kv_heads,
        head_dim,
        vocab_size,
        rms_norm_eps: rms_norm_eps as f64,
        rope_theta: md.f32_opt("rope.freq_base")?.unwrap_or(10000.0),
        rope_interleaved: order == RopeOrder::Norm,
        rope_scaling: rope_scaling(md, context)?,
        rope_freq_factors: None,
        sliding_window: None,
        max_seq_len: MAX_SEQ_LEN,
        bos_token_id: id("tokenizer.ggml.bos_token_id", 1),
        eos_token_id: id("tokenizer.ggml.eos_token_id", 2),
    })
}

/// `{arch}.rope.scaling.*`, with llama.cpp's defaults (`context` is the trained context,
/// YaRN's original context when the file does not say).
fn rope_scaling(md: &Metadata<'_>, context: usize) -> Result<RopeScaling> {
    let factor = match md.f32_opt("rope.scaling.factor")? {
        Some(f) if f != 0.0 => f,
        _ => md
            .f32_opt("rope.scale_linear")?
            .filter(|f| *f != 0.0)
            .unwrap_or(1.0),
    };
    // llama.cpp's default type is linear; `none` never scales, whatever the factor.
    let kind = match md.string_opt("rope.scaling.type")?.as_deref() {
        Some("none") => ScalingKind::None,
        None | Some("linear") if factor == 1.0 => ScalingKind::None,
        None | Some("linear") => ScalingKind::Linear,
        Some("yarn") => ScalingKind::Yarn,
        Some(other) => {
            return Err(md.bad(format!(
                "rope scaling {other:?} is not supported (none, linear, yarn)"
            )))
        }
    };
    let factor = if kind == ScalingKind::None {
        1.0
    } else {
        factor
    };
    let d = RopeScaling::default();
    Ok(RopeScaling {
        kind,
        factor,
        original_context: md
            .u32_opt("rope.scaling.original_context_length")?
            .map_or(context, |c| c as usize),
        beta_fast: md
            .f32_opt("rope.scaling.yarn_beta_fast")?
            .unwrap_or(d.beta_fast),
        beta_slow: md
            .f32_opt("rope.scaling.yarn_beta_slow")?
            .unwrap_or(d.beta_slow),
        log_multiplier: md
            .f32_opt("rope.scaling.yarn_log_multiplier")?
            .unwrap_or(0.0),
        attn_factor: md.f32_opt("rope.scaling.attn_factor")?.unwrap_or(1.0),
    })
}
