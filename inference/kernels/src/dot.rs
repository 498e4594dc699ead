//! Fused dequantize-and-dot kernels: one sixteen-row weight group (see
//! [`super::quant::GROUP`]) against `m` quantized activation rows, in three versions
//! chosen at run time: AVX-512 VNNI (`vpdpbusd`: sixteen rows by four columns per
//! instruction), AVX2 (`vpmaddubsw` + `vpmaddwd`, eight rows per instruction) and a
//! portable scalar one.
//!
//! Lane `r` of every vector is weight row `r`, so a row's result needs no horizontal sum
//! and every row is computed by the same sequence of operations in each version: the
//! block's integer dot product (exact), then per block, in block order,
//! `acc = fma(d * dy, sumi, acc)` and for Q4_1 `acc = fma(m, sy, acc)`. The three
//! versions therefore give the same bits on every machine (the tests check it), and an
//! activation row's result never depends on the other rows of its batch, so speculative
//! verification of `m` positions returns exactly what `m` single steps would.
//!
//! Each group's weights are unpacked once per block and reused for all `m` activation
//! rows (up to four at a time in registers), so a verification batch reads the weights
//! once.
//!
//! This file holds Q4_1 and Q8_0 and the entry points of every format; the other formats'
//! versions live beside it: `nibble` (Q4_0, Q5_0, Q5_1), `k_quants` (Q4_K, Q5_K,
//! Q6_K), `float` (F16, BF16; f32 activations, four running sums per row) and
//! `avx512_formats` (their AVX-512 versions). Each module states the exact operations
//! its versions share.

use super::packed::{HalfFormat, NibbleFormat};
use super::packed_k::{HighBitsK, Q4Kx16, Q6Kx16};
use super::quant::{ActQ80, ActQ81, ActQ8K, Q41x16, Q80x16, GROUP};
use half::f16;
pub use nibble::NibbleView;

/// Instruction sets the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F + BW + VNNI.
    Avx512Vnni,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// Portable Rust.
    Scalar,
}

/// Every kernel version this CPU can run, fastest first (the scalar one is always last).
pub fn available() -> Vec<Isa> {
    let mut isas = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
        {
            isas.push(Isa::Avx512Vnni);
        }
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            isas.push(Isa::Avx2);
        }
    }
    isas.push(Isa::Scalar);
    isas
}

/// The fastest version this CPU runs, or the one `NEUROSHARD_KERNELS`
/// (`avx512` | `avx2` | `scalar`) asks for when the CPU has it. Checked once.
pub fn best() -> Isa {
    use std::sync::OnceLock;
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        let isas = available();
        let wanted = match std::env::var("NEUROSHARD_KERNELS").as_deref() {
            Ok("avx512") => Some(Isa::Avx512Vnni),
            Ok("avx2") => Some(Isa::Avx2),
            Ok("scalar") => Some(Isa::Scalar),
            _ => None,
        };
        match wanted {
            Some(isa) if isas.contains(&isa) => isa,
            _ => isas[0],
        }
    })
}

/// `out[i][r]` = row `r` of the group `w` (one entry per column block) · activation row
/// `i` of `acts` (`out.len()` rows of `w.len()` blocks each), with the `isa` version,
/// which must be one of [`available`].
pub fn q4_1_group(isa: Isa, w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
    assert_eq!(acts.len(), w.len() * out.len(), "activation blocks");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `available`, so the CPU has the features.
        Isa::Avx512Vnni => unsafe { avx512::q4_1_group(w, acts, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { avx2::q4_1_group(w, acts, out) },
        _ => scalar::q4_1_group(w, acts, out),
    }
}

/// Like [`q4_1_group`] for a Q8_0 group: `w` and its scales `d`, one entry per block.
pub fn q8_0_group(
    isa: Isa,
    w: &[Q80x16],
    d: &[[f16; GROUP]],
    acts: &[ActQ80],
    out: &mut [[f32; GROUP]],
) {
    assert_eq!(w.len(), d.len(), "scales");
    assert_eq!(acts.len(), w.len() * out.len(), "activation blocks");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `available`, so the CPU has the features.
        Isa::Avx512Vnni => unsafe { avx512::q8_0_group(w, d, acts, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { avx2::q8_0_group(w, d, acts, out) },
        _ => scalar::q8_0_group(w, d, acts, out),
    }
}

/// Like [`q4_1_group`] for a Q4_0, Q5_0 or Q5_1 group (Q8_1 activations, whose `qs` and
/// `d` are also their Q8_0).
pub fn nibble_group(
    isa: Isa,
    format: NibbleFormat,
    w: &NibbleView,
    acts: &[ActQ81],
    out: &mut [[f32; GROUP]],
) {
    assert_eq!(acts.len(), w.qs.len() * out.len(), "activation blocks");
    assert_eq!(w.d.len(), w.qs.len(), "scales");
    assert!(!format.high() || w.qh.len() == w.qs.len(), "fifth bits");
    assert!(!format.has_min() || w.m.len() == w.qs.len(), "offsets");
    macro_rules! run {
        ($high:expr, $min:expr, $off:expr) => {
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `isa` came from `available`, so the CPU has the features.
                Isa::Avx512Vnni => unsafe {
                    avx512_formats::nibble_group::<$high, $min, $off>(w, acts, out)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe {
                    nibble::avx2::nibble_group::<$high, $min, $off>(w, acts, out)
                },
                _ => nibble::scalar::nibble_group::<$high, $min, $off>(w, acts, out),
            }
        };
    }
    match format {
        NibbleFormat::Q4_0 => run!(false, false, 8),
        NibbleFormat::Q5_0 => run!(true, false, 16),
        NibbleFormat::Q5_1 => run!(true, true, 0),
    }
}

/// Like [`q4_1_group`] for a Q4_K group (`qh` empty) or a Q5_K one, with Q8_K
/// activations.
pub fn q4k_group(
    isa: Isa,
    w: &[Q4Kx16],
    qh: &[HighBitsK],
    acts: &[ActQ8K],
    out: &mut [[f32; GROUP]],
) {
    assert_eq!(acts.len(), w.len() * out.len(), "activation blocks");
    assert!(qh.is_empty() || qh.len() == w.len(), "fifth bits");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `available`, so the CPU has the features.
        Isa::Avx512Vnni => unsafe { avx512_formats::q4k_group(w, qh, acts, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { k_quants::avx2::q4k_group(w, qh, acts, out) },
        _ => k_quants::scalar::q4k_group(w, qh, acts, out),
    }
}

/// Like [`q4_1_group`] for a Q6_K group with Q8_K activations.
pub fn q6k_group(isa: Isa, w: &[Q6Kx16], acts: &[ActQ8K], out: &mut [[f32; GROUP]]) {
    assert_eq!(acts.len(), w.len() * out.len(), "activation blocks");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `available`, so the CPU has the features.
        Isa::Avx512Vnni => unsafe { avx512_formats::q6k_group(w, acts, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { k_quants::avx2::q6k_group(w, acts, out) },
        _ => k_quants::scalar::q6k_group(w, acts, out),
    }
}

/// `out[i][r]` = row `r` of the F16 or BF16 group `w` (one entry per column) · f32
/// activation row `i` of `xs`.
pub fn half_group(
    isa: Isa,
    format: HalfFormat,
    w: &[[u16; GROUP]],
    xs: &[f32],
    out: &mut [[f32; GROUP]],
) {
    assert_eq!(xs.len(), w.len() * out.len(), "activations");
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `available`, so the CPU has the features.
        Isa::Avx512Vnni => unsafe { avx512_formats::half_group(format, w, xs, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { float::avx2::half_group(format, w, xs, out) },
        _ => float::scalar::half_group(format, w, xs, out),
    }
}

/// Four activation bytes starting at `at`, as one little-endian word to broadcast.
#[inline(always)]
fn word(qs: &[i8], at: usize) -> i32 {
    i32::from_le_bytes([
        qs[at] as u8,
        qs[at + 1] as u8,
        qs[at + 2] as u8,
        qs[at + 3] as u8,
    ])
}

mod scalar {
    use super::*;

    pub fn q4_1_group(w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        for (ys, out) in acts.chunks_exact(nb.max(1)).zip(out.iter_mut()) {
            let mut acc = [0f32; GROUP];
            for (g, y) in w.iter().zip(ys) {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let mut sumi = 0i32;
                    for k in 0..4 {
                        for j in 0..4 {
                            let q = g.qs[k][4 * r + j];
                            sumi += (q & 0x0F) as i32 * y.qs[4 * k + j] as i32
                                + (q >> 4) as i32 * y.qs[16 + 4 * k + j] as i32;
                        }
                    }
                    *acc = (g.d[r].to_f32() * y.d).mul_add(sumi as f32, *acc);
                    *acc = g.m[r].to_f32().mul_add(y.s, *acc);
                }
            }
            *out = acc;
        }
        if nb == 0 {
            out.fill([0.0; GROUP]);
        }
    }

    pub fn q8_0_group(w: &[Q80x16], d: &[[f16; GROUP]], acts: &[ActQ80], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        for (ys, out) in acts.chunks_exact(nb.max(1)).zip(out.iter_mut()) {
            let mut acc = [0f32; GROUP];
            for ((g, d), y) in w.iter().zip(d).zip(ys) {
                for (r, acc) in acc.iter_mut().enumerate() {
                    let mut sumi = 0i32;
                    for k in 0..8 {
                        for j in 0..4 {
                            let q = g.qs[k][4 * r + j] as i32 - 128;
                            sumi += q * y.qs[4 * k + j] as i32;
                        }
                    }
                    *acc = (d[r].to_f32() * y.d).mul_add(sumi as f32, *acc);
                }
            }
            *out = acc;
        }
        if nb == 0 {
            out.fill([0.0; GROUP]);
        }
    }
}

/// Splits `out` into tiles of at most four activation rows and runs `tile::<T>` on each.
macro_rules! tiles {
    ($nb:expr, $acts:expr, $out:expr, $tile:ident $(, $arg:expr)*) => {{
        let nb = $nb;
        let mut done = 0;
        while done < $out.len() {
            let rest = $out.len() - done;
            let acts = &$acts[done * nb..];
            let out = &mut $out[done..];
            done += match rest {
                1 => { $tile::<1>($($arg,)* acts, out); 1 }
                2 => { $tile::<2>($($arg,)* acts, out); 2 }
                3 => { $tile::<3>($($arg,)* acts, out); 3 }
                _ => { $tile::<4>($($arg,)* acts, out); 4 }
            };
        }
    }};
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub fn q4_1_group(w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
        tiles!(w.len(), acts, out, q4_1_tile, w);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q4_1_tile<const T: usize>(w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        let mask = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); T];
        for (b, g) in w.iter().enumerate() {
            let mut lo = [_mm512_setzero_si512(); 4];
            let mut hi = [_mm512_setzero_si512(); 4];
            for k in 0..4 {
                // SAFETY: `qs[k]` is 64 bytes.
                let v = unsafe { _mm512_loadu_si512(g.qs[k].as_ptr() as *const _) };
                lo[k] = _mm512_and_si512(v, mask);
                hi[k] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
            }
            // SAFETY: `d` and `m` are sixteen f16 (32 bytes) each.
            let (d, m) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(g.d.as_ptr() as *const __m256i)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(g.m.as_ptr() as *const __m256i)),
                )
            };
            for (i, acc) in acc.iter_mut().enumerate() {
                let y = &acts[i * nb + b];
                let mut sumi = _mm512_setzero_si512();
                for k in 0..4 {
                    let ylo = _mm512_set1_epi32(word(&y.qs, 4 * k));
                    let yhi = _mm512_set1_epi32(word(&y.qs, 16 + 4 * k));
                    sumi = _mm512_dpbusd_epi32(sumi, lo[k], ylo);
                    sumi = _mm512_dpbusd_epi32(sumi, hi[k], yhi);
                }
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(y.d));
                *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), *acc);
                *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(y.s), *acc);
            }
        }
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            // SAFETY: `out` holds sixteen f32.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), *acc) };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub fn q8_0_group(w: &[Q80x16], d: &[[f16; GROUP]], acts: &[ActQ80], out: &mut [[f32; GROUP]]) {
        tiles!(w.len(), acts, out, q8_0_tile, w, d);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q8_0_tile<const T: usize>(
        w: &[Q80x16],
        d: &[[f16; GROUP]],
        acts: &[ActQ80],
        out: &mut [[f32; GROUP]],
    ) {
        let nb = w.len();
        let mut acc = [_mm512_setzero_ps(); T];
        for (b, (g, d)) in w.iter().zip(d).enumerate() {
            // The weights are stored plus 128, unsigned as vpdpbusd takes them; the
            // 128 · Σy this adds is subtracted below (exact integers).
            let mut q = [_mm512_setzero_si512(); 8];
            for (q, qs) in q.iter_mut().zip(&g.qs) {
                // SAFETY: `qs` is 64 bytes.
                *q = unsafe { _mm512_loadu_si512(qs.as_ptr() as *const _) };
            }
            // SAFETY: `d` is sixteen f16 (32 bytes).
            let d = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(d.as_ptr() as *const __m256i)) };
            for (i, acc) in acc.iter_mut().enumerate() {
                let y = &acts[i * nb + b];
                let mut sumi = _mm512_set1_epi32(-128 * y.sum);
                for (k, q) in q.iter().enumerate() {
                    sumi = _mm512_dpbusd_epi32(sumi, *q, _mm512_set1_epi32(word(&y.qs, 4 * k)));
                }
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(y.d));
                *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), *acc);
            }
        }
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            // SAFETY: `out` holds sixteen f32.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), *acc) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// Eight i32 sums of four u8 x i8 products each (no saturation: the callers' operands
    /// keep every pair sum within i16).
    #[target_feature(enable = "avx2")]
    fn dot_u8i8(a: __m256i, b: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q4_1_group(w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
        tiles!(w.len(), acts, out, q4_1_tile, w);
    }

    /// Rows 0-7 and 8-15 of the group are the two halves of each 64-byte chunk.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4_1_tile<const T: usize>(w: &[Q41x16], acts: &[ActQ81], out: &mut [[f32; GROUP]]) {
        let nb = w.len();
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [[_mm256_setzero_ps(); 2]; T];
        for (b, g) in w.iter().enumerate() {
            for h in 0..2 {
                let mut lo = [_mm256_setzero_si256(); 4];
                let mut hi = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    // SAFETY: bytes 32h..32h+32 of the 64-byte `qs[k]`.
                    let v = unsafe {
                        _mm256_loadu_si256(g.qs[k].as_ptr().add(32 * h) as *const __m256i)
                    };
                    lo[k] = _mm256_and_si256(v, mask);
                    hi[k] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                }
                // SAFETY: f16 8h..8h+8 of the sixteen in `d` and `m`.
                let (d, m) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(g.d.as_ptr().add(8 * h) as *const __m128i)),
                        _mm256_cvtph_ps(_mm_loadu_si128(g.m.as_ptr().add(8 * h) as *const __m128i)),
                    )
                };
                for (i, acc) in acc.iter_mut().enumerate() {
                    let y = &acts[i * nb + b];
                    let mut sumi = _mm256_setzero_si256();
                    for k in 0..4 {
                        let ylo = _mm256_set1_epi32(word(&y.qs, 4 * k));
                        let yhi = _mm256_set1_epi32(word(&y.qs, 16 + 4 * k));
                        sumi = _mm256_add_epi32(sumi, dot_u8i8(lo[k], ylo));
                        sumi = _mm256_add_epi32(sumi, dot_u8i8(hi[k], yhi));
                    }
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(y.d));
                    acc[h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), acc[h]);
                    acc[h] = _mm256_fmadd_ps(m, _mm256_set1_ps(y.s), acc[h]);
                }
            }
        }
        store(&acc, out);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q8_0_group(w: &[Q80x16], d: &[[f16; GROUP]], acts: &[ActQ80], out: &mut [[f32; GROUP]]) {
        tiles!(w.len(), acts, out, q8_0_tile, w, d);
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn q8_0_tile<const T: usize>(
        w: &[Q80x16],
        d: &[[f16; GROUP]],
        acts: &[ActQ80],
        out: &mut [[f32; GROUP]],
    ) {
        let nb = w.len();
        let mut acc = [[_mm256_setzero_ps(); 2]; T];
        for (b, (g, d)) in w.iter().zip(d).enumerate() {
            for h in 0..2 {
                // |w| as the unsigned operand, the weight's sign moved onto the activation:
                // |w| <= 128 and |y| <= 127 keep each pair sum within i16.
                let mut raw = [_mm256_setzero_si256(); 8];
                let mut mag = [_mm256_setzero_si256(); 8];
                for k in 0..8 {
                    // SAFETY: bytes 32h..32h+32 of the 64-byte `qs[k]`.
                    let v = unsafe {
                        _mm256_loadu_si256(g.qs[k].as_ptr().add(32 * h) as *const __m256i)
                    };
                    // Back from the stored `w + 128` to the signed weight.
                    raw[k] = _mm256_xor_si256(v, _mm256_set1_epi8(-128));
                    mag[k] = _mm256_abs_epi8(raw[k]);
                }
                // SAFETY: f16 8h..8h+8 of the sixteen in `d`.
                let d = unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr().add(8 * h) as *const __m128i))
                };
                for (i, acc) in acc.iter_mut().enumerate() {
                    let y = &acts[i * nb + b];
                    let mut sumi = _mm256_setzero_si256();
                    for k in 0..8 {
                        let yk = _mm256_set1_epi32(word(&y.qs, 4 * k));
                        let signed = _mm256_sign_epi8(yk, raw[k]);
                        sumi = _mm256_add_epi32(sumi, dot_u8i8(mag[k], signed));
                    }
                    let scale = _mm256_mul_ps(d, _mm256_set1_ps(y.d));
                    acc[h] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sumi), acc[h]);
                }
            }
        }
        store(&acc, out);
    }

    #[target_feature(enable = "avx2")]
    fn store<const T: usize>(acc: &[[__m256; 2]; T], out: &mut [[f32; GROUP]]) {
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            // SAFETY: `out` holds sixteen f32.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512_formats;
mod float;
mod k_quants;
mod nibble;
