//! `llama`: SmolLM2, TinyLlama, Llama 2 and Llama 3.x, and the Mistral 7B / Nemo files
//! llama.cpp's converter writes as `llama`. Query and key weights are stored permuted for
//! the interleaved (`NORM`) rotation; Llama 3.1+ files carry `rope_freqs.weight`, which
//! the loader turns into frequency factors. llama.cpp's `llama` graph has no sliding
//! window, so a Mistral file's window is not applied here either (it never binds within
//! Mistral 7B's trained context).

use super::{LayerParts, LlamaLike, Part, RopeOrder};

pub static LLAMA: LlamaLike = LlamaLike {
    architectures: &["llama"],
    order: RopeOrder::Norm,
    parts: LayerParts {
        // llama.cpp loads QKV biases when present (some fine-tunes have them).
        qkv_bias: Part::Optional,
        qk_norm: Part::Absent,
        fused_gate_up: false,
    },
};
