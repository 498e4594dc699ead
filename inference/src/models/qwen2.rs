//! `qwen2`: Qwen2 and Qwen2.5 (and their distillations). A Llama block whose query, key
//! and value projections have biases (optional, as in llama.cpp, though Qwen2 files
//! always have them), rotated in the `NEOX` halves order, often with a large
//! `rope.freq_base` and optionally YaRN for long context.

use super::{llama_like_config, Family, LayerParts, Metadata, Part, RopeOrder};
use crate::config::ModelConfig;
use crate::error::Result;

pub struct Qwen2;

impl Family for Qwen2 {
    fn architectures(&self) -> &'static [&'static str] {
        &["qwen2"]
    }

    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig> {
        llama_like_config(md, RopeOrder::Neox)
    }

    fn layer_parts(&self) -> LayerParts {
        LayerParts {
            qkv_bias: Part::Optional,
            qk_norm: Part::Absent,
        }
    }
}
