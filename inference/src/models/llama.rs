//! `llama`: SmolLM2, TinyLlama, Llama 2 and Llama 3.x, and the Mistral 7B / Nemo files
//! llama.cpp's converter writes as `llama`. Query and key weights are stored permuted for
//! the interleaved (`NORM`) rotation; Llama 3.1+ files carry `rope_freqs.weight`, which
//! the loader turns into frequency factors. llama.cpp's `llama` graph has no sliding
//! window, so a Mistral file's window is not applied here either (it never binds within
//! Mistral 7B's trained context).

use super::{llama_like_config, Family, LayerParts, Metadata, Part, RopeOrder};
use crate::config::ModelConfig;
use crate::error::Result;

pub struct Llama;

impl Family for Llama {
    fn architectures(&self) -> &'static [&'static str] {
        &["llama"]
    }

    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig> {
        llama_like_config(md, RopeOrder::Norm)
    }

    fn layer_parts(&self) -> LayerParts {
        LayerParts {
            // llama.cpp loads these when present (some fine-tunes have them).
            qkv_bias: Part::Optional,
            qk_norm: Part::Absent,
        }
    }
}
