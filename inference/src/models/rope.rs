//! Rotary position tables, shared by every family, by inference and by training: for each
//! position, the cosines and sines of the `head_dim / 2` rotation angles (`ops::rope`
//! applies them in the interleaved GGUF/ggml `NORM` order or in the `NEOX` halves order,
//! as the family says).
//!
//! Variants, as llama.cpp reads them from GGUF metadata: plain (`rope.freq_base`; an
//! NTK-aware model simply ships its enlarged base), Llama-3 frequency factors (the
//! `rope_freqs.weight` tensor divides each angle), linear position interpolation
//! (`rope.scaling.type = linear`, `rope.scaling.factor`) and YaRN (`yarn`, with
//! `original_context_length`, `yarn_beta_fast` / `_slow`, `yarn_log_multiplier` and
//! `attn_factor`). The plain table is built exactly as candle's `quantized_llama` builds it
//! (the bits the existing llama path has always had); the scaled ones follow ggml's
//! `rope_yarn` arithmetic in f32 so they agree with llama.cpp.

use crate::config::ModelConfig;
use crate::error::Result;
use candle_core::{DType, Device, Tensor};

/// How a model's positions are scaled before rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingKind {
    /// Positions as they are.
    None,
    /// Positions divided by `factor` (linear interpolation).
    Linear,
    /// YaRN: interpolation for the slow dimensions, extrapolation for the fast ones, and
    /// a magnitude correction.
    Yarn,
}

/// RoPE scaling parameters (llama.cpp's names and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeScaling {
    pub kind: ScalingKind,
    /// Context extension factor (`1 / freq_scale`).
    pub factor: f32,
    /// The context the model was trained with before extension (YaRN's `n_ctx_orig`).
    pub original_context: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// `rope.scaling.yarn_log_multiplier` (DeepSeek-style mscale), 0 when absent.
    pub log_multiplier: f32,
    /// `rope.scaling.attn_factor`: multiplies the cosines and sines.
    pub attn_factor: f32,
}

impl Default for RopeScaling {
    fn default() -> Self {
        Self {
            kind: ScalingKind::None,
            factor: 1.0,
            original_context: 0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            log_multiplier: 0.0,
            attn_factor: 1.0,
        }
    }
}

impl RopeScaling {
    /// True when the angles are the plain `pos * base^(-2i/d)` with unit magnitude.
    pub fn is_plain(&self) -> bool {
        self.kind != ScalingKind::Yarn && self.factor == 1.0 && self.attn_factor == 1.0
    }
}

/// True when `config` rotates with plain angles (no scaling, no frequency factors).
pub fn is_plain(config: &ModelConfig) -> bool {
    config.rope_scaling.is_plain() && config.rope_freq_factors.is_none()
}

/// `(cos, sin)`, each `len × head_dim / 2`, position-major.
pub fn tables(config: &ModelConfig, len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    if is_plain(config) {
        plain_tables(config, len)
    } else {
        Ok(scaled_tables(config, len))
    }
}

/// candle's `precomput_freqs_cis`, operation by operation.
fn plain_tables(config: &ModelConfig, len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let device = &Device::Cpu;
    let theta: Vec<_> = (0..config.head_dim)
        .step_by(2)
        .map(|i| 1f32 / config.rope_theta.powf(i as f32 / config.head_dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let idx_theta = Tensor::arange(0, len as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((len, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((
        idx_theta.cos()?.flatten_all()?.to_vec1()?,
        idx_theta.sin()?.flatten_all()?.to_vec1()?,
    ))
}

/// ggml's `ggml_rope_yarn_corr_dims`: the dimension range over which YaRN ramps from
/// extrapolation to interpolation.
fn corr_dims(n_dims: usize, s: &RopeScaling, base: f32) -> [f32; 2] {
    let corr_dim = |beta: f32| {
        n_dims as f32 * (s.original_context as f32 / (beta * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    [
        corr_dim(s.beta_fast).floor().max(0.0),
        corr_dim(s.beta_slow).ceil().min(n_dims as f32 - 1.0),
    ]
}

/// The magnitude ggml's rope kernel ends up multiplying by, after llama.cpp's context
/// set-up (`llama_context`'s `yarn_attn_factor` and the kernel's own correction).
fn magnitude(s: &RopeScaling) -> f32 {
    if s.kind != ScalingKind::Yarn {
        return s.attn_factor;
    }
    let mscale = |scale: f32, m: f32| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let f = s.factor;
    let mut attn = if s.log_multiplier != 0.0 {
        mscale(f, 1.0) / mscale(f, s.log_multiplier)
    } else {
        mscale(f, 1.0)
    };
    attn *= 1.0 / (1.0 + 0.1 * f.ln());
    attn *= s.attn_factor;
    attn * (1.0 + 0.1 * (1.0 / (1.0 / f)).ln())
}

/// ggml's `ggml_rope_cache_init` with `rope_yarn`, for every position.
fn scaled_tables(config: &ModelConfig, len: usize) -> (Vec<f32>, Vec<f32>) {
    let s = &config.rope_scaling;
    let n_dims = config.head_dim;
    let half = n_dims / 2;
    let freq_scale = 1.0 / s.factor;
    let theta_scale = config.rope_theta.powf(-2.0 / n_dims as f32);
    let yarn = s.kind == ScalingKind::Yarn;
    let corr = corr_dims(n_dims, s, config.rope_theta);
    let mscale = magnitude(s);
    let (mut cos, mut sin) = (
        Vec::with_capacity(len * half),
        Vec::with_capacity(len * half),
    );
    for pos in 0..len {
        let mut theta = pos as f32;
        for i in 0..half {
            let ff = config.rope_freq_factors.as_ref().map_or(1.0, |f| f[i]);
            let extrap = theta / ff;
            let interp = freq_scale * extrap;
            let angle = if yarn {
                let y = (i as f32 - corr[0]) / (corr[1] - corr[0]).max(0.001);
                let mix = 1.0 - y.clamp(0.0, 1.0);
                interp * (1.0 - mix) + extrap * mix
            } else {
                interp
            };
            cos.push(angle.cos() * mscale);
            sin.push(angle.sin() * mscale);
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        crate::tiny::tiny_config()
    }

    #[test]
    fn scaled_tables_without_scaling_are_the_plain_angles() {
        let mut c = config();
        let (pc, ps) = tables(&c, 64).unwrap();
        c.rope_freq_factors = Some(vec![1.0; c.head_dim / 2]);
        let (sc, ss) = tables(&c, 64).unwrap();
        for (a, b) in pc.iter().chain(&ps).zip(sc.iter().chain(&ss)) {
            // Same angles, computed in another order (ggml's running product).
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn linear_scaling_divides_the_positions() {
        let mut c = config();
        let (pc, _) = tables(&c, 64).unwrap();
        c.rope_scaling.kind = ScalingKind::Linear;
        c.rope_scaling.factor = 2.0;
        let (lc, _) = tables(&c, 64).unwrap();
        let half = c.head_dim / 2;
        for i in 0..half {
            assert!((lc[40 * half + i] - pc[20 * half + i]).abs() < 1e-4);
        }
    }

    #[test]
    fn yarn_extrapolates_fast_dimensions_and_interpolates_slow_ones() {
        let mut c = config();
        let (pc, _) = tables(&c, 64).unwrap();
        c.rope_scaling = RopeScaling {
            kind: ScalingKind::Yarn,
            factor: 4.0,
            original_context: 32,
            ..RopeScaling::default()
        };
        let (yc, _) = tables(&c, 64).unwrap();
        let (half, m) = (c.head_dim / 2, 1.0 + 0.1 * 4f32.ln());
        // Dimension 0 turns fastest: kept as it is (times the magnitude correction).
        assert!((yc[40 * half] - pc[40 * half] * m).abs() < 1e-4);
        // The slowest dimension is interpolated: position 40 turns like position 10.
        let last = half - 1;
        assert!((yc[40 * half + last] - pc[10 * half + last] * m).abs() < 1e-4);
    }
}
