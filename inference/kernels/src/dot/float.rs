//! Kernels of the 16-bit float formats F16 and BF16 (see [`crate::packed::half_groups`])
//! against f32 activations, unquantized.
//!
//! Every version computes each row's product with four running sums, column `c` going
//! to sum `c % 4` by `acc = fma(w, x, acc)` in column order, and returns
//! `(sum0 + sum1) + (sum2 + sum3)`, so all give the same bits.

use super::super::packed::HalfFormat;
use super::super::quant::GROUP;

/// Running sums per row.
const SUMS: usize = 4;

pub mod scalar {
    use super::*;

    /// `w`: one group's columns; `xs`: `out.len()` activation rows of `w.len()` values.
    pub fn half_group(
        format: HalfFormat,
        w: &[[u16; GROUP]],
        xs: &[f32],
        out: &mut [[f32; GROUP]],
    ) {
        let cols = w.len();
        for (x, out) in xs.chunks_exact(cols.max(1)).zip(out.iter_mut()) {
            let mut acc = [[0f32; GROUP]; SUMS];
            for (c, (w, &x)) in w.iter().zip(x).enumerate() {
                for (acc, &w) in acc[c % SUMS].iter_mut().zip(w) {
                    *acc = format.widen(w).mul_add(x, *acc);
                }
            }
            for (r, out) in out.iter_mut().enumerate() {
                *out = (acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]);
            }
        }
        if cols == 0 {
            out.fill([0.0; GROUP]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn half_group(
        format: HalfFormat,
        w: &[[u16; GROUP]],
        xs: &[f32],
        out: &mut [[f32; GROUP]],
    ) {
        match format {
            HalfFormat::F16 => rows::<false>(w, xs, out),
            HalfFormat::Bf16 => rows::<true>(w, xs, out),
        }
    }

    /// Eight 16-bit values widened to f32.
    #[target_feature(enable = "avx2,f16c")]
    fn widen<const BF16: bool>(v: &[u16]) -> __m256 {
        // SAFETY: eight u16, checked by the slice.
        let v = unsafe { _mm_loadu_si128(v[..8].as_ptr() as *const __m128i) };
        if BF16 {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v)))
        } else {
            _mm256_cvtph_ps(v)
        }
    }

    /// One activation row at a time (the group's columns stay in cache for the next).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn rows<const BF16: bool>(w: &[[u16; GROUP]], xs: &[f32], out: &mut [[f32; GROUP]]) {
        let cols = w.len();
        for (x, out) in xs.chunks_exact(cols.max(1)).zip(out.iter_mut()) {
            for h in 0..2 {
                let mut acc = [_mm256_setzero_ps(); SUMS];
                let (wc, xc) = (w.chunks_exact(SUMS), x.chunks_exact(SUMS));
                let (wr, xr) = (wc.remainder(), xc.remainder());
                for (w, x) in wc.zip(xc) {
                    for s in 0..SUMS {
                        let wv = widen::<BF16>(&w[s][8 * h..]);
                        acc[s] = _mm256_fmadd_ps(wv, _mm256_set1_ps(x[s]), acc[s]);
                    }
                }
                for (s, (w, &x)) in wr.iter().zip(xr).enumerate() {
                    let wv = widen::<BF16>(&w[8 * h..]);
                    acc[s] = _mm256_fmadd_ps(wv, _mm256_set1_ps(x), acc[s]);
                }
                let sum =
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                // SAFETY: eight f32 of the sixteen in `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * h), sum) };
            }
        }
        if cols == 0 {
            out.fill([0.0; GROUP]);
        }
    }
}
