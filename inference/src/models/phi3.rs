//! `phi3`: Phi-3 and Phi-3.5 mini / medium. A Llama block with `NEOX` rotation whose
//! converted files fuse the query, key and value projections (`attn_qkv`) and the gate
//! and up projections (`ffn_up`, gate first); the loader cuts them apart by rows. As in
//! llama.cpp, the declared sliding window is not applied, and the long-context
//! (`longrope`) variants are refused: their per-dimension factors are not implemented.

use super::{LayerParts, LlamaLike, Part, RopeOrder};

pub static PHI3: LlamaLike = LlamaLike {
    architectures: &["phi3"],
    order: RopeOrder::Neox,
    parts: LayerParts {
        qkv_bias: Part::Optional,
        qk_norm: Part::Absent,
        fused_gate_up: true,
    },
};
