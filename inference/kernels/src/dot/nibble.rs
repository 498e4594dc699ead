//! Kernels of the 32-value nibble formats Q4_0, Q5_0 and Q5_1 (see
//! [`crate::packed::NibbleGroups`]) against Q8_1-quantized activations, whose `qs` and
//! `d` are also GGML's Q8_0 of the row: the `_0` formats take those and the exact sum of
//! `qs`, Q5_1 takes `s` for its offset, as in GGML.
//!
//! Per row and block every version computes the exact integer `sumi = Σ q·y` over the
//! unsigned quants (minus `8 · Σy` for Q4_0, `16 · Σy` for Q5_0), then
//! `acc = fma(d · dy, sumi, acc)` and for Q5_1 `acc = fma(m, s, acc)`, in block order.

use super::super::packed::Nibbles;
use super::super::quant::{ActQ81, GROUP};
use super::word;
use half::f16;

/// One group's blocks of a nibble-format matrix (see [`crate::packed::NibbleGroups`]).
#[derive(Clone, Copy, Debug)]
pub struct NibbleView<'a> {
    pub qs: &'a [Nibbles],
    pub qh: &'a [[[u8; GROUP]; 4]],
    pub d: &'a [[f16; GROUP]],
    pub m: &'a [[f16; GROUP]],
}

pub mod scalar {
    use super::*;

    /// `HIGH`: five-bit quants; `MIN`: an offset per block (else `OFF · Σy` is
    /// subtracted).
    pub fn nibble_group<const HIGH: bool, const MIN: bool, const OFF: i32>(
        w: &NibbleView,
        acts: &[ActQ81],
        out: &mut [[f32; GROUP]],
    ) {
        let nb = w.qs.len();
        for (ys, out) in acts.chunks_exact(nb.max(1)).zip(out.iter_mut()) {
            let mut acc = [0f32; GROUP];
            for (b, y) in ys.iter().enumerate() {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let mut sumi = 0i32;
                    for k in 0..4 {
                        let h = if HIGH { w.qh[b][k][r] } else { 0 };
                        for j in 0..4 {
                            let q = w.qs[b].qs[k][4 * r + j];
                            let lo = (q & 0x0F) | ((h >> j) & 1) << 4;
                            let hi = (q >> 4) | ((h >> (4 + j)) & 1) << 4;
                            sumi += lo as i32 * y.qs[4 * k + j] as i32
                                + hi as i32 * y.qs[16 + 4 * k + j] as i32;
                        }
                    }
                    if !MIN {
                        sumi -= OFF * y.sum;
                    }
                    *acc = (w.d[b][r].to_f32() * y.d).mul_add(sumi as f32, *acc);
                    if MIN {
                        *acc = w.m[b][r].to_f32().mul_add(y.s, *acc);
                    }
                }
            }
            *out = acc;
        }
        if nb == 0 {
            out.fill([0.0; GROUP]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// The fifth bits of eight rows' 32 lanes (`4 r + j`) from one byte per row (`bits`):
    /// `0x10` where bit `j` (first vector) or bit `4 + j` (second) of the row's byte is set.
    #[target_feature(enable = "avx2")]
    pub fn high_bits(bits: &[u8]) -> (__m256i, __m256i) {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bits[..8]);
        let v = _mm256_set1_epi64x(i64::from_le_bytes(b));
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7,
            7, 7, 7,
        );
        let bytes = _mm256_shuffle_epi8(v, spread);
        let lo = _mm256_set1_epi32(0x0804_0201);
        let hi = _mm256_set1_epi32(0x8040_2010_u32 as i32);
        let bit = _mm256_set1_epi8(0x10);
        (
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, lo), lo), bit),
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, hi), hi), bit),
        )
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn nibble_group<const HIGH: bool, const MIN: bool, const OFF: i32>(
        w: &NibbleView,
        acts: &[ActQ81],
        out: &mut [[f32; GROUP]],
    ) {
        let nb = w.qs.len();
        let mut done = 0;
        while done < out.len() {
            let acts = &acts[done * nb..];
            let out = &mut out[done..];
            done += match out.len() {
                1 => tile::<1, HIGH, MIN, OFF>(w, acts, out),
                2 => tile::<2, HIGH, MIN, OFF>(w, acts, out),
                3 => tile::<3, HIGH, MIN, OFF>(w, acts, out),
                _ => tile::<4, HIGH, MIN, OFF>(w, acts, out),
            };
        }
    }

    /// `T` activation rows, one half of the group (rows 8h..8h+8, the halves of each
    /// 64-byte chunk) at a time so the accumulators stay in registers. Four products of
    /// at most `31 · 127 · 2` fit an i16 lane.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn tile<const T: usize, const HIGH: bool, const MIN: bool, const OFF: i32>(
        w: &NibbleView,
        acts: &[ActQ81],
        out: &mut [[f32; GROUP]],
    ) -> usize {
        let nb = w.qs.len();
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        for h in 0..2 {
            let mut acc = [_mm256_setzero_ps(); T];
            for b in 0..nb {
                let mut lo = [_mm256_setzero_si256(); 4];
                let mut hi = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    // SAFETY: bytes 32h..32h+32 of the 64-byte `qs[k]`.
                    let v = unsafe {
                        _mm256_loadu_si256(w.qs[b].qs[k].as_ptr().add(32 * h) as *const __m256i)
                    };
                    lo[k] = _mm256_and_si256(v, mask);
                    hi[k] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                    if HIGH {
                        let (l5, h5) = high_bits(&w.qh[b][k][8 * h..]);
                        lo[k] = _mm256_or_si256(lo[k], l5);
                        hi[k] = _mm256_or_si256(hi[k], h5);
                    }
                }
                let d = halfs(&w.d[b], h);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let y = &acts[i * nb + b];
                    let mut plo = _mm256_setzero_si256();
                    let mut phi = _mm256_setzero_si256();
                    for k in 0..4 {
                        let ylo = _mm256_set1_epi32(word(&y.qs, 4 * k));
                        let yhi = _mm256_set1_epi32(word(&y.qs, 16 + 4 * k));
                        plo = _mm256_add_epi16(plo, _mm256_maddubs_epi16(lo[k], ylo));
                        phi = _mm256_add_epi16(phi, _mm256_maddubs_epi16(hi[k], yhi));
                    }
                    let mut sumi = _mm256_add_epi32(
                        _mm256_madd_epi16(plo, ones),
                        _mm256_madd_epi16(phi, ones),
                    );
                    if !MIN {
                        sumi = _mm256_sub_epi32(sumi, _mm256_set1_epi32(OFF * y.sum));
                    }
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(y.d));
                    *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), *acc);
                    if MIN {
                        *acc = _mm256_fmadd_ps(halfs(&w.m[b], h), _mm256_set1_ps(y.s), *acc);
                    }
                }
            }
            for (acc, out) in acc.iter().zip(out.iter_mut()) {
                // SAFETY: eight of the sixteen f32 in `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * h), *acc) };
            }
        }
        T
    }

    /// F16 values 8h..8h+8 of sixteen, widened.
    #[target_feature(enable = "avx2,f16c")]
    fn halfs(v: &[f16; GROUP], h: usize) -> __m256 {
        // SAFETY: eight of the sixteen f16.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(v[8 * h..].as_ptr() as *const __m128i)) }
    }
}
