//! llama.cpp's reference quantizers of the K formats, ported bit for bit: what
//! `llama_model_quantize` runs for Q4_K, Q5_K and Q6_K tensors when it is given no
//! importance matrix (`quantize_row_q4_K_ref`, `quantize_row_q5_K_ref`,
//! `quantize_row_q6_K_ref` of ggml-quants.c with their helpers `make_qkx2_quants`,
//! `make_qx_quants` and `nearest_int`).
//!
//! candle's K quantizers are ports of an older ggml and round some blocks otherwise, so
//! a file re-quantized with them is not the file llama.cpp makes. These ports keep every
//! floating-point operation of the C code in its order (ggml-base is built without FMA
//! contraction, and Rust never contracts), so the bytes are equal; the tests check them
//! against llama.cpp's own output on random and edge rows (`fixtures/kquant_ref.json`,
//! made by `scripts/make-kquant-fixtures.py`).

use crate::packed_k::scale_min;
use crate::quant::SUPER;
use crate::{KernelError, Result};
use candle_core::quantized::GgmlDType;
use half::f16;

/// ggml's `GROUP_MAX_EPS`: below this largest magnitude a group is all zeros.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Quantizes `x` (a whole number of 256-value super-blocks, e.g. a matrix whose rows are
/// multiples of 256 wide, row after row) to `dtype`'s GGML bytes, as llama.cpp does.
pub fn quantize_k(dtype: GgmlDType, x: &[f32]) -> Result<Vec<u8>> {
    if !x.len().is_multiple_of(SUPER) {
        return Err(KernelError::BadMatrix(format!(
            "{} values are not a whole number of {SUPER}-value super-blocks",
            x.len()
        )));
    }
    let blocks = x.chunks_exact(SUPER);
    Ok(match dtype {
        GgmlDType::Q4K => blocks.flat_map(|b| q4k_q5k_block(b, false)).collect(),
        GgmlDType::Q5K => blocks.flat_map(|b| q4k_q5k_block(b, true)).collect(),
        GgmlDType::Q6K => blocks.flat_map(q6k_block).collect(),
        other => {
            return Err(KernelError::BadMatrix(format!(
                "{other:?} is not a K format this quantizer knows"
            )))
        }
    })
}

/// ggml's `nearest_int`: round half to even through the float adder (|f| < 2^22).
fn nearest_int(f: f32) -> i32 {
    let val = f + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's `make_qkx2_quants` with `use_mad = false`: an asymmetric `nmax + 1`-level
/// quantization of `x` (into `l`) weighted by `w`, searching `nstep + 1` scales.
/// Returns (scale, minus the min).
fn make_qkx2_quants(
    x: &[f32],
    w: &[f32],
    nmax: i32,
    l: &mut [u8],
    search: (f32, f32, i32),
) -> (f32, f32) {
    let (rmin, rdelta, nstep) = search;
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for (&xi, &wi) in x.iter().zip(w).skip(1) {
        if xi < min {
            min = xi;
        }
        if xi > max {
            max = xi;
        }
        sum_w += wi;
        sum_x += wi * xi;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    // `min` changes when a better scale is found, and later steps use the new one, as in C.
    let level =
        |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for ((li, &xi), &wi) in l.iter_mut().zip(x).zip(w) {
        *li = level(iscale, xi, min);
        let diff = scale * *li as f32 + min - xi;
        best_mad += wi * (diff * diff);
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        let iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((a, &xi), &wi) in aux.iter_mut().zip(x).zip(w) {
            *a = level(iscale, xi, min);
            let q = *a as f32;
            sum_l += wi * q;
            sum_l2 += wi * q * q;
            sum_xl += wi * q * xi;
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for ((&a, &xi), &wi) in aux.iter().zip(x).zip(w) {
                let diff = this_scale * a as f32 + this_min - xi;
                mad += wi * (diff * diff);
            }
            if mad < best_mad {
                l[..n].copy_from_slice(&aux[..n]);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// One Q4_K (144 bytes) or, with `high`, Q5_K (176 bytes) super-block:
/// `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref` on 256 values.
fn q4k_q5k_block(x: &[f32], high: bool) -> Vec<u8> {
    let (nmax, search) = if high {
        (31, (-0.5, 0.1, 15))
    } else {
        (15, (-1.0, 0.1, 20))
    };
    let mut l = [0u8; SUPER];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for (j, (xs, lj)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let mut sum_x2 = 0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let w: Vec<f32> = xs.iter().map(|v| av_x + v.abs()).collect();
        (scales[j], mins[j]) = make_qkx2_quants(xs, &w, nmax, lj, search);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for (j, (&s, &m)) in scales.iter().zip(&mins).enumerate() {
        let ls = (nearest_int(inv_scale * s) as u8).min(63);
        let lm = (nearest_int(inv_min * m) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for (j, (lj, xs)) in l.chunks_exact_mut(32).zip(x.chunks_exact(32)).enumerate() {
        let (sc, m) = scale_min(j, &packed);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (li, &xi) in lj.iter_mut().zip(xs) {
            *li = nearest_int((xi + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    let mut out = Vec::with_capacity(if high { 176 } else { 144 });
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&packed);
    if high {
        let mut qh = [0u8; 32];
        for (c, chunk) in l.chunks_exact(64).enumerate() {
            for (j, h) in qh.iter_mut().enumerate() {
                *h |= (chunk[j] >> 4) << (2 * c) | (chunk[j + 32] >> 4) << (2 * c + 1);
            }
        }
        out.extend_from_slice(&qh);
    }
    for chunk in l.chunks_exact(64) {
        out.extend((0..32).map(|j| (chunk[j] & 0x0F) | (chunk[j + 32] & 0x0F) << 4));
    }
    out
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (so each value
/// weighs its square): a symmetric quantization of `x` to `2 nmax` levels (into `l`,
/// offset by `nmax`) searching nineteen scales. Returns the scale.
fn make_qx_quants(x: &[f32], nmax: i32, l: &mut [u8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let q = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (li, &v) in l.iter_mut().zip(x) {
        *li = (level(iscale, v) + nmax) as u8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (level(iscale, v) + nmax) as u8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// One Q6_K super-block (210 bytes): `quantize_row_q6_K_ref` on 256 values.
fn q6k_block(x: &[f32]) -> Vec<u8> {
    let mut l = [0u8; SUPER];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        *s = make_qx_quants(&x[16 * ib..16 * ib + 16], 32, &mut l[16 * ib..16 * ib + 16]);
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return vec![0; 210];
    }
    let iscale = -128.0 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    let sc: Vec<i8> = scales
        .iter()
        .map(|&s| nearest_int(iscale * s).min(127) as i8)
        .collect();
    for ((&s, lj), xs) in sc
        .iter()
        .zip(l.chunks_exact_mut(16))
        .zip(x.chunks_exact(16))
    {
        let dj = d.to_f32() * s as f32;
        if dj == 0.0 {
            continue;
        }
        for (li, &xi) in lj.iter_mut().zip(xs) {
            *li = (nearest_int(xi / dj).clamp(-32, 31) + 32) as u8;
        }
    }
    let (mut ql, mut qh) = (Vec::with_capacity(128), Vec::with_capacity(64));
    for c in l.chunks_exact(128) {
        ql.extend((0..32).map(|i| (c[i] & 0x0F) | (c[i + 64] & 0x0F) << 4));
        ql.extend((0..32).map(|i| (c[i + 32] & 0x0F) | (c[i + 96] & 0x0F) << 4));
        qh.extend((0..32).map(|i| {
            (c[i] >> 4) | (c[i + 32] >> 4) << 2 | (c[i + 64] >> 4) << 4 | (c[i + 96] >> 4) << 6
        }));
    }
    let mut out = ql;
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend_from_slice(&d.to_le_bytes());
    out
}

#[cfg(test)]
mod tests;
