//! The shape of a decoder model: its architecture family, sizes, head counts, norm
//! epsilon, RoPE base, convention and scaling, sliding window, special token ids. Read
//! from GGUF metadata (each family reads its own keys, see [`crate::models`]) or from a
//! Hugging Face Llama `config.json`, and the single source the shard executor sizes itself
//! from.

use crate::error::{InferenceError, Result};
use crate::models::rope::RopeScaling;
use candle_core::quantized::gguf_file;
use serde::Deserialize;
use std::path::Path;

/// Hyper-parameters of a decoder of one of the supported families.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The GGUF `general.architecture` (`llama` for safetensors checkpoints).
    pub architecture: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    /// true: GGUF/ggml convention, rotation pairs (2i, 2i+1); false: Hugging Face
    /// convention, pairs (i, i + d/2).
    pub rope_interleaved: bool,
    /// Position scaling (linear, YaRN) from the file's metadata.
    pub rope_scaling: RopeScaling,
    /// Llama 3's per-dimension frequency divisors (the `rope_freqs.weight` tensor).
    pub rope_freq_factors: Option<Vec<f32>>,
    /// Each position attends only to this many latest positions (itself included).
    pub sliding_window: Option<usize>,
    pub max_seq_len: usize,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// Longest context the executor precomputes rotary tables for (as candle's oracle does).
pub const MAX_SEQ_LEN: usize = 4096;

/// A string metadata value of a GGUF file ("" when absent or not a string).
pub(crate) fn md_string(ct: &gguf_file::Content, key: &str) -> String {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default()
}

/// A u32 metadata value of a GGUF file, or `default` when absent or not a u32.
pub(crate) fn md_u32_or(ct: &gguf_file::Content, key: &str, default: u32) -> u32 {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .unwrap_or(default)
}

impl ModelConfig {
    /// Reads the hyper-parameters of a GGUF file of any supported family (an unknown
    /// architecture is an error listing the supported ones). Tensor-borne parts (Llama 3's
    /// `rope_freqs`) are filled in when the weights load.
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        crate::models::config_from_gguf(ct, path)
    }

    /// Reads a Hugging Face Llama `config.json`.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Hf {
            hidden_size: usize,
            intermediate_size: usize,
            num_hidden_layers: usize,
            num_attention_heads: usize,
            num_key_value_heads: Option<usize>,
            vocab_size: usize,
            rms_norm_eps: f64,
            rope_theta: Option<f32>,
            bos_token_id: Option<u32>,
            eos_token_id: Option<u32>,
            max_position_embeddings: Option<usize>,
        }
        let hf: Hf = serde_json::from_str(text)
            .map_err(|e| InferenceError::bad_file(path, format!("config.json: {e}")))?;
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        if hf.num_attention_heads == 0
            || num_kv_heads == 0
            || !hf.num_attention_heads.is_multiple_of(num_kv_heads)
            || !hf.hidden_size.is_multiple_of(hf.num_attention_heads)
        {
            return Err(InferenceError::bad_file(path, "inconsistent head counts"));
        }
        Ok(Self {
            architecture: "llama".into(),
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads,
            head_dim: hf.hidden_size / hf.num_attention_heads,
            vocab_size: hf.vocab_size,
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta: hf.rope_theta.unwrap_or(10000.0),
            rope_interleaved: false,
            rope_scaling: RopeScaling::default(),
            rope_freq_factors: None,
            sliding_window: None,
            max_seq_len: hf
                .max_position_embeddings
                .unwrap_or(MAX_SEQ_LEN)
                .min(MAX_SEQ_LEN),
            bos_token_id: hf.bos_token_id.unwrap_or(1),
            eos_token_id: hf.eos_token_id.unwrap_or(2),
        })
    }

    /// The Hugging Face `config.json` text of this configuration.
    pub fn to_hf_json(&self) -> String {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "vocab_size": self.vocab_size,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "max_position_embeddings": self.max_seq_len,
        })
        .to_string()
    }
}
