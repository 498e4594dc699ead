//! `qwen3`: the dense Qwen3 models. A Llama block without biases whose queries and keys
//! are RMS-normalized per head (`attn_q_norm` / `attn_k_norm`, `head_dim` wide) before
//! the `NEOX` rotation; the head size comes from `qwen3.attention.key_length` and need not
//! be `hidden / heads`.

use super::{llama_like_config, Family, LayerParts, Metadata, Part, RopeOrder};
use crate::config::ModelConfig;
use crate::error::Result;

pub struct Qwen3;

impl Family for Qwen3 {
    fn architectures(&self) -> &'static [&'static str] {
        &["qwen3"]
    }

    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig> {
        llama_like_config(md, RopeOrder::Neox)
    }

    fn layer_parts(&self) -> LayerParts {
        LayerParts {
            qkv_bias: Part::Optional,
            qk_norm: Part::Required,
        }
    }
}
