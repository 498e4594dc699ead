//! Kernels of the K-quant formats (Q4_K, Q5_K, Q6_K; see [`crate::packed_k`]) against
//! Q8_K-quantized activations, as llama.cpp pairs them.
//!
//! Per row and super-block every version computes exact integers: for Q4_K and Q5_K
//! `sumi = Σ_j sc_j · Σ q·y` and `msum = Σ_j mn_j · Σy` over the eight 32-value
//! sub-blocks, then `acc = fma(d · dy, sumi, acc)` and `acc = fma(-(dmin · dy), msum,
//! acc)`; for Q6_K `sumi = Σ_j sc_j · Σ q·y - 32 · Σ_j sc_j · Σy` over the sixteen
//! 16-value sub-blocks, then `acc = fma(d · dy, sumi, acc)`; super-blocks in order. No
//! intermediate overflows its integer type in any version, so all give the same bits.

use super::super::packed_k::{HighBitsK, Q4Kx16, Q6Kx16};
use super::super::quant::{ActQ8K, GROUP};
use super::word;

/// The sum of Q8_K values `32 j..32 j + 32` (sub-block `j` of Q4_K / Q5_K).
#[inline(always)]
fn bsum32(y: &ActQ8K, j: usize) -> i32 {
    y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32
}

pub mod scalar {
    use super::*;

    /// Q4_K (`qh` empty) or Q5_K.
    pub fn q4k_group(w: &[Q4Kx16], qh: &[HighBitsK], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        for (ys, out) in acts.chunks_exact(nb.max(1)).zip(out.iter_mut()) {
            let mut acc = [0f32; GROUP];
            for (b, (g, y)) in w.iter().zip(ys).enumerate() {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let (mut sumi, mut msum) = (0i32, 0i32);
                    for c in 0..4 {
                        let (mut dlo, mut dhi) = (0i32, 0i32);
                        for k in 0..8 {
                            let h = qh.get(b).map_or(0, |qh| qh[c][k][r]);
                            for j in 0..4 {
                                let q = g.qs[c][k][4 * r + j];
                                let lo = (q & 0x0F) | ((h >> j) & 1) << 4;
                                let hi = (q >> 4) | ((h >> (4 + j)) & 1) << 4;
                                dlo += lo as i32 * y.qs[64 * c + 4 * k + j] as i32;
                                dhi += hi as i32 * y.qs[64 * c + 32 + 4 * k + j] as i32;
                            }
                        }
                        sumi += g.sc[c][2 * r] as i32 * dlo + g.sc[c][2 * r + 1] as i32 * dhi;
                        msum += g.mn[c][2 * r] as i32 * bsum32(y, 2 * c)
                            + g.mn[c][2 * r + 1] as i32 * bsum32(y, 2 * c + 1);
                    }
                    *acc = (g.d[r].to_f32() * y.d).mul_add(sumi as f32, *acc);
                    *acc = (-(g.dmin[r].to_f32() * y.d)).mul_add(msum as f32, *acc);
                }
            }
            *out = acc;
        }
        if nb == 0 {
            out.fill([0.0; GROUP]);
        }
    }

    pub fn q6k_group(w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        for (ys, out) in acts.chunks_exact(nb.max(1)).zip(out.iter_mut()) {
            let mut acc = [0f32; GROUP];
            for (g, y) in w.iter().zip(ys) {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let mut sumi = 0i32;
                    for c in 0..8 {
                        let (mut dlo, mut dhi) = (0i32, 0i32);
                        for k in 0..4 {
                            for j in 0..4 {
                                let top = g.qh[c][k / 2][4 * r + j] >> (4 * (k % 2));
                                let q = g.ql[c][k][4 * r + j];
                                let lo = (q & 0x0F) | (top & 3) << 4;
                                let hi = (q >> 4) | ((top >> 2) & 3) << 4;
                                dlo += lo as i32 * y.qs[32 * c + 4 * k + j] as i32;
                                dhi += hi as i32 * y.qs[32 * c + 16 + 4 * k + j] as i32;
                            }
                        }
                        let (s0, s1) = (g.sc[c][2 * r] as i32, g.sc[c][2 * r + 1] as i32);
                        sumi += s0 * dlo + s1 * dhi;
                        sumi -= 32 * (s0 * y.bsums[2 * c] as i32 + s1 * y.bsums[2 * c + 1] as i32);
                    }
                    *acc = (g.d[r].to_f32() * y.d).mul_add(sumi as f32, *acc);
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
    use super::super::nibble::avx2::high_bits;
    use super::*;
    use std::arch::x86_64::*;

    /// Sixteen bytes of pairs (`[2 r + e]`, rows 8h..8h+8) widened to i16 pairs, then each
    /// row's entry `e` copied to both halves of its 32-bit lane.
    #[target_feature(enable = "avx2")]
    fn pairs(bytes: &[u8], signed: bool) -> (__m256i, __m256i) {
        // SAFETY: `bytes` has at least sixteen bytes (checked by the slice below).
        let v = unsafe { _mm_loadu_si128(bytes[..16].as_ptr() as *const __m128i) };
        let wide = if signed {
            _mm256_cvtepi8_epi16(v)
        } else {
            _mm256_cvtepu8_epi16(v)
        };
        let e0 = _mm256_setr_epi8(
            0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9,
            12, 13, 12, 13,
        );
        let e1 = _mm256_setr_epi8(
            2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6, 7, 6, 7, 10, 11,
            10, 11, 14, 15, 14, 15,
        );
        (_mm256_shuffle_epi8(wide, e0), _mm256_shuffle_epi8(wide, e1))
    }

    /// The i16 pair `(a, b)` as one 32-bit lane.
    #[inline(always)]
    fn pair(a: i32, b: i32) -> i32 {
        (a & 0xFFFF) | (b << 16)
    }

    #[target_feature(enable = "avx2")]
    fn load32(p: &[u8]) -> __m256i {
        // SAFETY: 32 bytes, checked by the slice.
        unsafe { _mm256_loadu_si256(p[..32].as_ptr() as *const __m256i) }
    }

    #[target_feature(enable = "avx2,f16c")]
    fn halfs(v: &[half::f16; GROUP], h: usize) -> __m256 {
        // SAFETY: f16 8h..8h+8 of sixteen.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(v[8 * h..].as_ptr() as *const __m128i)) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q4k_group(w: &[Q4Kx16], qh: &[HighBitsK], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
        tiles!(w.len(), acts, out, q4k_tile, w, qh);
    }

    /// Q4_K or Q5_K (`qh` not empty) for `T` activation rows, one half of the group (rows
    /// 8h..8h+8) at a time so the accumulators stay in the sixteen registers. Per pair of
    /// sub-blocks `c` and word `k`, the i16 lanes collect up to eight products of at most
    /// `15 · 127 · 2` (four of `31 · 127 · 2` for Q5_K) before `vpmaddwd` scales them.
    // The indices name the layout's axes (pair, word, half), as in the scalar version.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4k_tile<const T: usize>(
        w: &[Q4Kx16],
        qh: &[HighBitsK],
        acts: &[ActQ8K],
        out: &mut [[f32; GROUP]],
    ) {
        let nb = w.len();
        let flush = if qh.is_empty() { 8 } else { 4 };
        let mask = _mm256_set1_epi8(0x0F);
        for h in 0..2 {
            let mut acc = [_mm256_setzero_ps(); T];
            for (b, g) in w.iter().enumerate() {
                let mut sumi = [_mm256_setzero_si256(); T];
                for c in 0..4 {
                    let mut plo = [_mm256_setzero_si256(); T];
                    let mut phi = [_mm256_setzero_si256(); T];
                    for k in 0..8 {
                        let v = load32(&g.qs[c][k][32 * h..]);
                        let mut lo = _mm256_and_si256(v, mask);
                        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                        if let Some(qh) = qh.get(b) {
                            let (l5, h5) = high_bits(&qh[c][k][8 * h..]);
                            lo = _mm256_or_si256(lo, l5);
                            hi = _mm256_or_si256(hi, h5);
                        }
                        for i in 0..T {
                            let y = &acts[i * nb + b];
                            let ylo = _mm256_set1_epi32(word(&y.qs, 64 * c + 4 * k));
                            let yhi = _mm256_set1_epi32(word(&y.qs, 64 * c + 32 + 4 * k));
                            plo[i] = _mm256_add_epi16(plo[i], _mm256_maddubs_epi16(lo, ylo));
                            phi[i] = _mm256_add_epi16(phi[i], _mm256_maddubs_epi16(hi, yhi));
                        }
                        if (k + 1) % flush == 0 {
                            let (sc0, sc1) = pairs(&g.sc[c][16 * h..], false);
                            for i in 0..T {
                                let s = _mm256_add_epi32(
                                    _mm256_madd_epi16(plo[i], sc0),
                                    _mm256_madd_epi16(phi[i], sc1),
                                );
                                sumi[i] = _mm256_add_epi32(sumi[i], s);
                                plo[i] = _mm256_setzero_si256();
                                phi[i] = _mm256_setzero_si256();
                            }
                        }
                    }
                }
                let (d, dmin) = (halfs(&g.d, h), halfs(&g.dmin, h));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let y = &acts[i * nb + b];
                    let dy = _mm256_set1_ps(y.d);
                    let a =
                        _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sumi[i]), *acc);
                    let m = _mm256_cvtepi32_ps(mins(g, h, y));
                    *acc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, dy), m, a);
                }
            }
            store_half(&acc, out, h);
        }
    }

    /// `Σ_j mn_j · Σy` over the eight sub-blocks, for rows 8h..8h+8.
    #[target_feature(enable = "avx2")]
    fn mins(g: &Q4Kx16, h: usize, y: &ActQ8K) -> __m256i {
        let mut msum = _mm256_setzero_si256();
        for (c, mn) in g.mn.iter().enumerate() {
            // SAFETY: sixteen of the 32 bytes.
            let mn = unsafe { _mm_loadu_si128(mn[16 * h..].as_ptr() as *const __m128i) };
            let bs = _mm256_set1_epi32(pair(bsum32(y, 2 * c), bsum32(y, 2 * c + 1)));
            msum = _mm256_add_epi32(msum, _mm256_madd_epi16(_mm256_cvtepu8_epi16(mn), bs));
        }
        msum
    }

    /// Stores the accumulators of rows 8h..8h+8.
    #[target_feature(enable = "avx2")]
    fn store_half<const T: usize>(acc: &[__m256; T], out: &mut [[f32; GROUP]], h: usize) {
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            // SAFETY: eight of the sixteen f32 in `out`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * h), *acc) };
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q6k_group(w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
        // Tiles of at most two activation rows: with more, the accumulators outgrow the
        // sixteen registers.
        let nb = w.len();
        let mut done = 0;
        while done < out.len() {
            let acts = &acts[done * nb..];
            let out = &mut out[done..];
            done += if out.len() == 1 {
                q6k_tile::<1>(w, acts, out);
                1
            } else {
                q6k_tile::<2>(w, acts, out);
                2
            };
        }
    }

    /// Q6_K for `T` activation rows, one half of the group at a time: per pair of
    /// sub-blocks, the i16 lanes collect two products of at most `63 · 127 · 2` before
    /// `vpmaddwd` scales them.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q6k_tile<const T: usize>(w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        let (m4, m2, m12) = (
            _mm256_set1_epi8(0x0F),
            _mm256_set1_epi8(0x03),
            _mm256_set1_epi8(0x0C),
        );
        for h in 0..2 {
            let mut acc = [_mm256_setzero_ps(); T];
            for (b, g) in w.iter().enumerate() {
                let mut sumi = [_mm256_setzero_si256(); T];
                for (i, sumi) in sumi.iter_mut().enumerate() {
                    *sumi = q6k_offsets(g, h, &acts[i * nb + b]);
                }
                for c in 0..8 {
                    let mut plo = [_mm256_setzero_si256(); T];
                    let mut phi = [_mm256_setzero_si256(); T];
                    for k in 0..4 {
                        let v = load32(&g.ql[c][k][32 * h..]);
                        let mut top = load32(&g.qh[c][k / 2][32 * h..]);
                        if k % 2 == 1 {
                            top = _mm256_srli_epi16::<4>(top);
                        }
                        let lo = _mm256_or_si256(
                            _mm256_and_si256(v, m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(top, m2)),
                        );
                        let hi = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4),
                            _mm256_slli_epi16::<2>(_mm256_and_si256(top, m12)),
                        );
                        for (i, (plo, phi)) in plo.iter_mut().zip(phi.iter_mut()).enumerate() {
                            let y = &acts[i * nb + b];
                            let ylo = _mm256_set1_epi32(word(&y.qs, 32 * c + 4 * k));
                            let yhi = _mm256_set1_epi32(word(&y.qs, 32 * c + 16 + 4 * k));
                            *plo = _mm256_add_epi16(*plo, _mm256_maddubs_epi16(lo, ylo));
                            *phi = _mm256_add_epi16(*phi, _mm256_maddubs_epi16(hi, yhi));
                        }
                        if k % 2 == 1 {
                            let (sc0, sc1) = pairs(as_bytes(&g.sc[c], h), true);
                            for ((sumi, plo), phi) in sumi.iter_mut().zip(&mut plo).zip(&mut phi) {
                                let s = _mm256_add_epi32(
                                    _mm256_madd_epi16(*plo, sc0),
                                    _mm256_madd_epi16(*phi, sc1),
                                );
                                *sumi = _mm256_add_epi32(*sumi, s);
                                *plo = _mm256_setzero_si256();
                                *phi = _mm256_setzero_si256();
                            }
                        }
                    }
                }
                let d = halfs(&g.d, h);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let dy = _mm256_set1_ps(acts[i * nb + b].d);
                    *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sumi[i]), *acc);
                }
            }
            store_half(&acc, out, h);
        }
    }

    /// Bytes 16h.. of a row of signed scales, as the unsigned bytes `pairs` loads.
    fn as_bytes(sc: &[i8; 32], h: usize) -> &[u8] {
        // SAFETY: reinterpreting i8 as u8 of the same length.
        let bytes = unsafe { &*(sc as *const [i8; 32] as *const [u8; 32]) };
        &bytes[16 * h..]
    }

    /// `-32 · Σ_j sc_j · Σy` over the sixteen sub-blocks, for rows 8h..8h+8.
    #[target_feature(enable = "avx2")]
    fn q6k_offsets(g: &Q6Kx16, h: usize, y: &ActQ8K) -> __m256i {
        let mut corr = _mm256_setzero_si256();
        for (c, sc) in g.sc.iter().enumerate() {
            // SAFETY: sixteen of the 32 bytes.
            let sc = unsafe { _mm_loadu_si128(sc[16 * h..].as_ptr() as *const __m128i) };
            let bs = _mm256_set1_epi32(pair(y.bsums[2 * c] as i32, y.bsums[2 * c + 1] as i32));
            corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), bs));
        }
        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<5>(corr))
    }
}
