//! `qwen2`: Qwen2 and Qwen2.5 (and their distillations). A Llama block whose query, key
//! and value projections have biases (optional, as in llama.cpp, though Qwen2 files
//! always have them), rotated in the `NEOX` halves order, often with a large
//! `rope.freq_base` and optionally YaRN for long context.

use super::{LayerParts, LlamaLike, Part, RopeOrder};

pub static QWEN2: LlamaLike = LlamaLike {
    architectures: &["qwen2"],
    order: RopeOrder::Neox,
    parts: LayerParts {
        qkv_bias: Part::Optional,
        qk_norm: Part::Absent,
        fused_gate_up: false,
    },
};
