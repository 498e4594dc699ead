//! A tiny random Llama written as a Hugging Face checkpoint (`config.json` +
//! `model.safetensors`), or tiny GGUF files of every family (see [`crate::tiny_gguf`]). Tests and benches use
//! them where the real model would be too slow: they exercise exactly the same loading
//! and execution code as a real model.

use crate::config::ModelConfig;
use crate::error::{InferenceError, Result};
pub use crate::tiny_gguf::{
    tiny_family, tiny_family_files, write_gguf, write_split_gguf, write_tiny_gguf, TinyGguf,
    MIXED_FORMATS, TINY_FAMILIES,
};
use crate::weights::ModelSource;
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;

/// The configuration of the tiny test model: 6 layers, hidden 64, 4 heads / 2 KV heads,
/// vocabulary 256 (one token per byte).
pub fn tiny_config() -> ModelConfig {
    ModelConfig {
        architecture: "llama".into(),
        hidden_size: 64,
        intermediate_size: 128,
        num_layers: 6,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 16,
        vocab_size: 256,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        rope_interleaved: false,
        rope_scaling: Default::default(),
        rope_freq_factors: None,
        sliding_window: None,
        max_seq_len: 1024,
        bos_token_id: 1,
        eos_token_id: 2,
    }
}

fn random(rng: &mut StdRng, shape: (usize, usize), scale: f32) -> Result<Tensor> {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
        .collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// Writes a random Llama with `config` (weights drawn from `seed`) into `dir`.
pub fn write_random_llama(dir: &Path, config: &ModelConfig, seed: u64) -> Result<ModelSource> {
    std::fs::create_dir_all(dir).map_err(|e| InferenceError::io(dir, e))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let (h, i, v) = (
        config.hidden_size,
        config.intermediate_size,
        config.vocab_size,
    );
    let kv = config.num_kv_heads * config.head_dim;
    let s_in = 1.5 / (h as f32).sqrt();
    let s_mid = 1.5 / (i as f32).sqrt();
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert(
        "model.embed_tokens.weight".into(),
        random(&mut rng, (v, h), 1.0)?,
    );
    for l in 0..config.num_layers {
        let p = format!("model.layers.{l}");
        t.insert(
            format!("{p}.self_attn.q_proj.weight"),
            random(&mut rng, (h, h), s_in)?,
        );
        t.insert(
            format!("{p}.self_attn.k_proj.weight"),
            random(&mut rng, (kv, h), s_in)?,
        );
        t.insert(
            format!("{p}.self_attn.v_proj.weight"),
            random(&mut rng, (kv, h), s_in)?,
        );
        t.insert(
            format!("{p}.self_attn.o_proj.weight"),
            random(&mut rng, (h, h), s_in)?,
        );
        t.insert(
            format!("{p}.mlp.gate_proj.weight"),
            random(&mut rng, (i, h), s_in)?,
        );
        t.insert(
            format!("{p}.mlp.up_proj.weight"),
            random(&mut rng, (i, h), s_in)?,
        );
        t.insert(
            format!("{p}.mlp.down_proj.weight"),
            random(&mut rng, (h, i), s_mid)?,
        );
        let ones = |rng: &mut StdRng| -> Result<Tensor> {
            let d: Vec<f32> = (0..h).map(|_| 1.0 + rng.gen_range(-0.1f32..0.1)).collect();
            Ok(Tensor::from_vec(d, h, &Device::Cpu)?)
        };
        t.insert(format!("{p}.input_layernorm.weight"), ones(&mut rng)?);
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            ones(&mut rng)?,
        );
    }
    t.insert(
        "model.norm.weight".into(),
        Tensor::ones(h, candle_core::DType::F32, &Device::Cpu)?,
    );
    t.insert(
        "lm_head.weight".into(),
        random(&mut rng, (v, h), 3.0 / (h as f32).sqrt())?,
    );
    let st = dir.join("model.safetensors");
    candle_core::safetensors::save(&t, &st)?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_hf_json()).map_err(|e| InferenceError::io(&cfg, e))?;
    Ok(ModelSource::Safetensors(dir.to_path_buf()))
}

/// Writes the standard tiny model ([`tiny_config`]) into `dir`.
pub fn write_tiny_llama(dir: &Path, seed: u64) -> Result<ModelSource> {
    write_random_llama(dir, &tiny_config(), seed)
}
