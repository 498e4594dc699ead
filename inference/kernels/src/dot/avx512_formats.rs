//! AVX-512 versions of the kernels of the nibble formats ([`super::nibble`]), the
//! K-quants ([`super::k_quants`]) and the 16-bit floats ([`super::float`]). For the
//! quantized formats one `vpdpbusd` multiplies a whole 64-byte chunk (sixteen rows by
//! four values) with four broadcast activation bytes into exact i32 sums per row (a
//! K-quant sub-block's sum is then scaled with `vpmulld`); the floats take sixteen rows
//! per vector. The integers are the scalar versions', and so are the float operations
//! that follow, so the results are the same bits.

use super::super::packed::HalfFormat;
use super::super::packed_k::{HighBitsK, Q4Kx16, Q6Kx16};
use super::super::quant::{ActQ81, ActQ8K, GROUP};
use super::nibble::NibbleView;
use super::word;
use std::arch::x86_64::*;

/// The i16 pair `(a, b)` as one 32-bit lane.
#[inline(always)]
fn pair(a: i32, b: i32) -> i32 {
    (a & 0xFFFF) | (b << 16)
}

/// The sum of Q8_K values `32 j..32 j + 32`.
#[inline(always)]
fn bsum32(y: &ActQ8K, j: usize) -> i32 {
    y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32
}

#[target_feature(enable = "avx512f,avx512bw")]
fn load64(p: &[u8; 64]) -> __m512i {
    // SAFETY: 64 bytes.
    unsafe { _mm512_loadu_si512(p.as_ptr() as *const _) }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn load32(p: &[u8]) -> __m256i {
    // SAFETY: 32 bytes, checked by the slice.
    unsafe { _mm256_loadu_si256(p[..32].as_ptr() as *const __m256i) }
}

#[target_feature(enable = "avx512f")]
fn halfs(v: &[half::f16; GROUP]) -> __m512 {
    // SAFETY: sixteen f16 (32 bytes).
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr() as *const __m256i)) }
}

/// Adds `0x10` to the lanes `4 r + j` whose bit `j` (`HI`: bit `4 + j`) is set in row
/// `r`'s byte of `bits` (sixteen bytes).
#[target_feature(enable = "avx512f,avx512bw")]
fn fifth_bits(bits: &[u8; GROUP], lo: __m512i, hi: __m512i) -> (__m512i, __m512i) {
    // SAFETY: sixteen bytes.
    let v = unsafe { _mm_loadu_si128(bits.as_ptr() as *const __m128i) };
    let spread = _mm512_shuffle_epi8(
        _mm512_cvtepu8_epi32(v),
        _mm512_set4_epi32(0x0C0C_0C0C, 0x0808_0808, 0x0404_0404, 0),
    );
    let bit = _mm512_set1_epi8(0x10);
    let klo = _mm512_test_epi8_mask(spread, _mm512_set1_epi32(0x0804_0201));
    let khi = _mm512_test_epi8_mask(spread, _mm512_set1_epi32(0x8040_2010_u32 as i32));
    (
        _mm512_mask_add_epi8(lo, klo, lo, bit),
        _mm512_mask_add_epi8(hi, khi, hi, bit),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub fn q4k_group(w: &[Q4Kx16], qh: &[HighBitsK], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
    tiles!(w.len(), acts, out, q4k_tile, w, qh);
}

/// Q4_K or Q5_K (`qh` not empty) for `T` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn q4k_tile<const T: usize>(
    w: &[Q4Kx16],
    qh: &[HighBitsK],
    acts: &[ActQ8K],
    out: &mut [[f32; GROUP]],
) {
    let nb = w.len();
    let mask = _mm512_set1_epi8(0x0F);
    let low16 = _mm512_set1_epi32(0xFFFF);
    let mut acc = [_mm512_setzero_ps(); T];
    for (b, g) in w.iter().enumerate() {
        let mut sumi = [_mm512_setzero_si512(); T];
        let mut msum = [_mm512_setzero_si512(); T];
        for c in 0..4 {
            let sc = _mm512_cvtepu8_epi16(load32(&g.sc[c]));
            let (sc0, sc1) = (_mm512_and_si512(sc, low16), _mm512_srli_epi32::<16>(sc));
            let mn = _mm512_cvtepu8_epi16(load32(&g.mn[c]));
            let mut dlo = [_mm512_setzero_si512(); T];
            let mut dhi = [_mm512_setzero_si512(); T];
            for k in 0..8 {
                let v = load64(&g.qs[c][k]);
                let mut lo = _mm512_and_si512(v, mask);
                let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
                if let Some(qh) = qh.get(b) {
                    (lo, hi) = fifth_bits(&qh[c][k], lo, hi);
                }
                for i in 0..T {
                    let y = &acts[i * nb + b];
                    let ylo = _mm512_set1_epi32(word(&y.qs, 64 * c + 4 * k));
                    let yhi = _mm512_set1_epi32(word(&y.qs, 64 * c + 32 + 4 * k));
                    dlo[i] = _mm512_dpbusd_epi32(dlo[i], lo, ylo);
                    dhi[i] = _mm512_dpbusd_epi32(dhi[i], hi, yhi);
                }
            }
            for i in 0..T {
                let y = &acts[i * nb + b];
                let s = _mm512_add_epi32(
                    _mm512_mullo_epi32(dlo[i], sc0),
                    _mm512_mullo_epi32(dhi[i], sc1),
                );
                sumi[i] = _mm512_add_epi32(sumi[i], s);
                let bs = _mm512_set1_epi32(pair(bsum32(y, 2 * c), bsum32(y, 2 * c + 1)));
                msum[i] = _mm512_add_epi32(msum[i], _mm512_madd_epi16(mn, bs));
            }
        }
        let (d, dmin) = (halfs(&g.d), halfs(&g.dmin));
        for (i, acc) in acc.iter_mut().enumerate() {
            let dy = _mm512_set1_ps(acts[i * nb + b].d);
            let a = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sumi[i]), *acc);
            *acc = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, dy), _mm512_cvtepi32_ps(msum[i]), a);
        }
    }
    store(&acc, out);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub fn q6k_group(w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
    tiles!(w.len(), acts, out, q6k_tile, w);
}

/// Q6_K for `T` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn q6k_tile<const T: usize>(w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
    let nb = w.len();
    let (m4, m2, m12) = (
        _mm512_set1_epi8(0x0F),
        _mm512_set1_epi8(0x03),
        _mm512_set1_epi8(0x0C),
    );
    let mut acc = [_mm512_setzero_ps(); T];
    for (b, g) in w.iter().enumerate() {
        let mut sumi = [_mm512_setzero_si512(); T];
        for c in 0..8 {
            // SAFETY: 32 bytes.
            let raw = unsafe { _mm256_loadu_si256(g.sc[c].as_ptr() as *const __m256i) };
            let sc = _mm512_cvtepi8_epi16(raw);
            let sc0 = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(sc));
            let sc1 = _mm512_srai_epi32::<16>(sc);
            let mut dlo = [_mm512_setzero_si512(); T];
            let mut dhi = [_mm512_setzero_si512(); T];
            for k in 0..4 {
                let v = load64(&g.ql[c][k]);
                let mut top = load64(&g.qh[c][k / 2]);
                if k % 2 == 1 {
                    top = _mm512_srli_epi16::<4>(top);
                }
                let lo = _mm512_or_si512(
                    _mm512_and_si512(v, m4),
                    _mm512_slli_epi16::<4>(_mm512_and_si512(top, m2)),
                );
                let hi = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(v), m4),
                    _mm512_slli_epi16::<2>(_mm512_and_si512(top, m12)),
                );
                for i in 0..T {
                    let y = &acts[i * nb + b];
                    let ylo = _mm512_set1_epi32(word(&y.qs, 32 * c + 4 * k));
                    let yhi = _mm512_set1_epi32(word(&y.qs, 32 * c + 16 + 4 * k));
                    dlo[i] = _mm512_dpbusd_epi32(dlo[i], lo, ylo);
                    dhi[i] = _mm512_dpbusd_epi32(dhi[i], hi, yhi);
                }
            }
            for i in 0..T {
                let y = &acts[i * nb + b];
                let s = _mm512_add_epi32(
                    _mm512_mullo_epi32(dlo[i], sc0),
                    _mm512_mullo_epi32(dhi[i], sc1),
                );
                let bs = _mm512_set1_epi32(pair(y.bsums[2 * c] as i32, y.bsums[2 * c + 1] as i32));
                let corr = _mm512_slli_epi32::<5>(_mm512_madd_epi16(sc, bs));
                sumi[i] = _mm512_sub_epi32(_mm512_add_epi32(sumi[i], s), corr);
            }
        }
        let d = halfs(&g.d);
        for (i, acc) in acc.iter_mut().enumerate() {
            let dy = _mm512_set1_ps(acts[i * nb + b].d);
            *acc = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(sumi[i]), *acc);
        }
    }
    store(&acc, out);
}

#[target_feature(enable = "avx512f")]
fn store<const T: usize>(acc: &[__m512; T], out: &mut [[f32; GROUP]]) {
    for (acc, out) in acc.iter().zip(out.iter_mut()) {
        // SAFETY: `out` holds sixteen f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), *acc) };
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
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
            1 => nibble_tile::<1, HIGH, MIN, OFF>(w, acts, out),
            2 => nibble_tile::<2, HIGH, MIN, OFF>(w, acts, out),
            3 => nibble_tile::<3, HIGH, MIN, OFF>(w, acts, out),
            _ => nibble_tile::<4, HIGH, MIN, OFF>(w, acts, out),
        };
    }
}

/// Q4_0, Q5_0 or Q5_1 for `T` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn nibble_tile<const T: usize, const HIGH: bool, const MIN: bool, const OFF: i32>(
    w: &NibbleView,
    acts: &[ActQ81],
    out: &mut [[f32; GROUP]],
) -> usize {
    let nb = w.qs.len();
    let mask = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        let mut lo = [_mm512_setzero_si512(); 4];
        let mut hi = [_mm512_setzero_si512(); 4];
        for k in 0..4 {
            let v = load64(&w.qs[b].qs[k]);
            lo[k] = _mm512_and_si512(v, mask);
            hi[k] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
            if HIGH {
                (lo[k], hi[k]) = fifth_bits(&w.qh[b][k], lo[k], hi[k]);
            }
        }
        let d = halfs(&w.d[b]);
        let m = if MIN {
            halfs(&w.m[b])
        } else {
            _mm512_setzero_ps()
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            let y = &acts[i * nb + b];
            let mut sumi = _mm512_setzero_si512();
            for k in 0..4 {
                sumi = _mm512_dpbusd_epi32(sumi, lo[k], _mm512_set1_epi32(word(&y.qs, 4 * k)));
                let yhi = _mm512_set1_epi32(word(&y.qs, 16 + 4 * k));
                sumi = _mm512_dpbusd_epi32(sumi, hi[k], yhi);
            }
            if !MIN {
                sumi = _mm512_sub_epi32(sumi, _mm512_set1_epi32(OFF * y.sum));
            }
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(y.d));
            *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), *acc);
            if MIN {
                *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(y.s), *acc);
            }
        }
    }
    store(&acc, out);
    T
}

#[target_feature(enable = "avx512f,avx512bw")]
pub fn half_group(format: HalfFormat, w: &[[u16; GROUP]], xs: &[f32], out: &mut [[f32; GROUP]]) {
    match format {
        HalfFormat::F16 => half_rows::<false>(w, xs, out),
        HalfFormat::Bf16 => half_rows::<true>(w, xs, out),
    }
}

/// Sixteen 16-bit values widened to f32.
#[target_feature(enable = "avx512f,avx512bw")]
fn widen<const BF16: bool>(v: &[u16; GROUP]) -> __m512 {
    // SAFETY: sixteen u16 (32 bytes).
    let v = unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) };
    if BF16 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(v)))
    } else {
        _mm512_cvtph_ps(v)
    }
}

/// Like the AVX2 version: four running sums by column, one activation row at a time.
#[target_feature(enable = "avx512f,avx512bw")]
fn half_rows<const BF16: bool>(w: &[[u16; GROUP]], xs: &[f32], out: &mut [[f32; GROUP]]) {
    const SUMS: usize = 4;
    let cols = w.len();
    for (x, out) in xs.chunks_exact(cols.max(1)).zip(out.iter_mut()) {
        let mut acc = [_mm512_setzero_ps(); SUMS];
        let (wc, xc) = (w.chunks_exact(SUMS), x.chunks_exact(SUMS));
        let (wr, xr) = (wc.remainder(), xc.remainder());
        for (w, x) in wc.zip(xc) {
            for s in 0..SUMS {
                acc[s] = _mm512_fmadd_ps(widen::<BF16>(&w[s]), _mm512_set1_ps(x[s]), acc[s]);
            }
        }
        for (s, (w, &x)) in wr.iter().zip(xr).enumerate() {
            acc[s] = _mm512_fmadd_ps(widen::<BF16>(w), _mm512_set1_ps(x), acc[s]);
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        // SAFETY: `out` holds sixteen f32.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), sum) };
    }
    if cols == 0 {
        out.fill([0.0; GROUP]);
    }
}
