//! Fused dequantize-and-dot kernels: four weight rows against one quantized activation
//! row, with an AVX2 version (chosen at run time) and a portable scalar one.
//!
//! Both versions give the same bits as candle's kernels on the same machine: the integer
//! part of every block's dot product is exact whatever the instruction order, and the
//! floating-point part is done in candle's order — for Q4_1, per block
//! `sum += (sumi * d) * dy + m * sy` in block order (GGML's reference
//! `vec_dot_q4_1_q8_1`, which candle 0.11 uses on x86); for Q8_0, candle's AVX2 kernel
//! (eight lane accumulators fed by `fma`, then its horizontal sum) or, without AVX2, its
//! scalar one. Four rows are computed together so each activation block is loaded once
//! per four rows and the four per-row dependency chains overlap.

use super::quant::{ActQ80, ActQ81, BlockQ80, Q41x4};

/// True when the AVX2 kernels can run on this CPU (checked once).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot products of the four rows of `groups` (one group per column block) with `act`.
pub fn q4_1_dot4(groups: &[Q41x4], act: &[ActQ81]) -> [f32; 4] {
    debug_assert_eq!(groups.len(), act.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { avx2::q4_1_dot4(groups, act) };
    }
    q4_1_dot4_scalar(groups, act)
}

/// The portable Q4_1 kernel (GGML's reference arithmetic).
pub fn q4_1_dot4_scalar(groups: &[Q41x4], act: &[ActQ81]) -> [f32; 4] {
    let mut sums = [0f32; 4];
    for (g, y) in groups.iter().zip(act) {
        for (r, sum) in sums.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..16 {
                let q = g.qs[r][j];
                sumi += (q & 0x0F) as i32 * y.qs[j] as i32 + (q >> 4) as i32 * y.qs[j + 16] as i32;
            }
            *sum += sumi as f32 * g.d[r].to_f32() * y.d + g.m[r].to_f32() * y.s;
        }
    }
    sums
}

/// Dot products of four Q8_0 weight rows with `act`.
pub fn q8_0_dot4(rows: [&[BlockQ80]; 4], act: &[ActQ80]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { avx2::q8_0_dot4(rows, act) };
    }
    rows.map(|row| q8_0_dot_scalar(row, act))
}

/// Dot product of one Q8_0 weight row with `act` (for the rows after the last full four).
pub fn q8_0_dot1(row: &[BlockQ80], act: &[ActQ80]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { avx2::q8_0_dot4([row, row, row, row], act)[0] };
    }
    q8_0_dot_scalar(row, act)
}

/// The portable Q8_0 kernel (GGML's reference arithmetic).
pub fn q8_0_dot_scalar(row: &[BlockQ80], act: &[ActQ80]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in row.iter().zip(act) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
        sum += sumi as f32 * x.d.to_f32() * y.d;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::quant::{ActQ80, ActQ81, BlockQ80, Q41x4};
    use std::arch::x86_64::*;

    /// Sums of the eight i32 lanes of each of four vectors: `[Σa, Σb, Σc, Σd]`.
    #[target_feature(enable = "avx2")]
    fn hsum4_epi32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
        let ab = _mm256_hadd_epi32(a, b);
        let cd = _mm256_hadd_epi32(c, d);
        let abcd = _mm256_hadd_epi32(ab, cd);
        _mm_add_epi32(
            _mm256_castsi256_si128(abcd),
            _mm256_extracti128_si256::<1>(abcd),
        )
    }

    /// `Σ q_i * y_i` over one block as eight i32 partial sums; `q` holds unsigned 4-bit
    /// values (low nibbles in bytes 0..16, high nibbles in 16..32, GGML's order).
    #[target_feature(enable = "avx2")]
    fn nibble_dot(qs: &[u8; 16], y: __m256i) -> __m256i {
        // SAFETY: reads exactly the 16 bytes of `qs`.
        let raw = unsafe { _mm_loadu_si128(qs.as_ptr() as *const __m128i) };
        let both =
            _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4));
        let q = _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
        _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q4_1_dot4(groups: &[Q41x4], act: &[ActQ81]) -> [f32; 4] {
        let mut sums = _mm_setzero_ps();
        for (g, y) in groups.iter().zip(act) {
            // SAFETY: `qs` is 32 bytes; `d` and `m` are four f16 (8 bytes) each.
            let (yq, d, m) = unsafe {
                (
                    _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i),
                    _mm_cvtph_ps(_mm_loadl_epi64(g.d.as_ptr() as *const __m128i)),
                    _mm_cvtph_ps(_mm_loadl_epi64(g.m.as_ptr() as *const __m128i)),
                )
            };
            let sumi = hsum4_epi32(
                nibble_dot(&g.qs[0], yq),
                nibble_dot(&g.qs[1], yq),
                nibble_dot(&g.qs[2], yq),
                nibble_dot(&g.qs[3], yq),
            );
            // (sumi * d) * dy + m * sy, without fusing, as the scalar code rounds it.
            let scaled = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(sumi), d), _mm_set1_ps(y.d));
            let term = _mm_add_ps(scaled, _mm_mul_ps(m, _mm_set1_ps(y.s)));
            sums = _mm_add_ps(sums, term);
        }
        let mut out = [0f32; 4];
        // SAFETY: `out` has room for four f32.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
        out
    }

    /// candle's `hsum_float_8`.
    #[target_feature(enable = "avx2")]
    fn hsum_float_8(x: __m256) -> f32 {
        let res = _mm256_extractf128_ps::<1>(x);
        let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
        let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
        let res = _mm_add_ss(res, _mm_movehdup_ps(res));
        _mm_cvtss_f32(res)
    }

    /// candle's `mul_sum_i8_pairs_float`: eight f32 sums of four products each.
    #[target_feature(enable = "avx2")]
    fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x);
        let sy = _mm256_sign_epi8(y, x);
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q8_0_dot4(rows: [&[BlockQ80]; 4], act: &[ActQ80]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (b, y) in act.iter().enumerate() {
            // SAFETY: `qs` is 32 bytes.
            let yq = unsafe { _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i) };
            for (acc, row) in acc.iter_mut().zip(rows) {
                let x = &row[b];
                // SAFETY: `qs` is 32 bytes.
                let xq = unsafe { _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i) };
                let d = _mm256_set1_ps(x.d.to_f32() * y.d);
                *acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(xq, yq), *acc);
            }
        }
        [
            hsum_float_8(acc[0]),
            hsum_float_8(acc[1]),
            hsum_float_8(acc[2]),
            hsum_float_8(acc[3]),
        ]
    }
}
