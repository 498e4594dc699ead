//! `mistral3`: Ministral 3 and the Mistral Small 3.x text models, a Llama block with
//! interleaved rotation and, usually, YaRN scaling. A sliding window is applied when the
//! file declares one (`mistral3.attention.sliding_window`); Llama 4 style attention
//! temperature scaling is refused rather than ignored. (Mistral 7B and Nemo files are
//! `llama` files, see [`super::llama`].)

use super::{llama_like_config, Family, LayerParts, Metadata, Part, RopeOrder};
use crate::config::ModelConfig;
use crate::error::Result;

pub struct Mistral;

impl Family for Mistral {
    fn architectures(&self) -> &'static [&'static str] {
        &["mistral3"]
    }

    fn config(&self, md: &Metadata<'_>) -> Result<ModelConfig> {
        md.refuse("attention.temperature_scale")?;
        let mut config = llama_like_config(md, RopeOrder::Norm)?;
        config.sliding_window = md
            .u32_opt("attention.sliding_window")?
            .filter(|w| *w > 0)
            .map(|w| w as usize);
        Ok(config)
    }

    fn layer_parts(&self) -> LayerParts {
        LayerParts {
            qkv_bias: Part::Optional,
            qk_norm: Part::Absent,
            fused_gate_up: false,
        }
    }
}
