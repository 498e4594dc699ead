//! `qwen3`: the dense Qwen3 models. A Llama block without biases whose queries and keys
//! are RMS-normalized per head (`attn_q_norm` / `attn_k_norm`, `head_dim` wide) before
//! the `NEOX` rotation; the head size comes from `qwen3.attention.key_length` and need not
//! be `hidden / heads`.

use super::{LayerParts, LlamaLike, Part, RopeOrder};

pub static QWEN3: LlamaLike = LlamaLike {
    architectures: &["qwen3"],
    order: RopeOrder::Neox,
    parts: LayerParts {
        qkv_bias: Part::Optional,
        qk_norm: Part::Required,
        fused_gate_up: false,
    },
};
