//! Block formats of the Q4_1 and Q8_0 weights (copied out of candle's tensors at load;
//! the other formats are in [`crate::packed`] and [`crate::packed_k`]), and the
//! quantization of activation rows to the 8-bit formats the dot products take: Q8_1 for
//! Q4_1, Q5_1 (and, through its `qs`, `d` and `sum`, Q4_0 and Q5_0), Q8_0 for Q8_0 weights
//! and Q8_K (256-value super-blocks) for the K-quants. The weights are regrouped at load
//! into sixteen-row groups (see [`GROUP`]); the activation quantizers reproduce candle's
//! (and GGML's reference) `quantize_row_q8_1` / `quantize_row_q8_0` / `quantize_row_q8_K`
//! bit for bit (the tests compare them with candle's blocks).

use half::f16;

/// Values per quantization block (the 32-value formats).
pub const BLOCK: usize = 32;

/// Values per K-quant super-block (Q4_K, Q5_K, Q6_K and their Q8_K activations).
pub const SUPER: usize = 256;

/// Rows per interleaved weight group: lane `r` of every SIMD vector of a kernel is row
/// `r` of the group, so sixteen rows are computed at once with no horizontal sums.
pub const GROUP: usize = 16;

/// Sixteen consecutive weight rows' Q4_1 blocks at one column block. `qs[k][4 * r + j]` is
/// GGML's byte `4k + j` of row `r`: its low nibble is value `4k + j`, its high nibble
/// value `16 + 4k + j`; value `i` of row `r` is `d[r] * q + m[r]`. 320 bytes, the same
/// 20 bytes per row and block as GGML's format.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Q41x16 {
    pub qs: [[u8; 64]; 4],
    pub d: [f16; GROUP],
    pub m: [f16; GROUP],
}

impl Default for Q41x16 {
    fn default() -> Self {
        Self {
            qs: [[0; 64]; 4],
            d: [f16::ZERO; GROUP],
            m: [f16::ZERO; GROUP],
        }
    }
}

/// Sixteen consecutive weight rows' Q8_0 values at one column block, offset by 128 to
/// be unsigned (what `vpdpbusd` multiplies; the kernels subtract `128 · Σy`):
/// `qs[k][4 * r + j]` is value `4k + j` of row `r` plus 128. The scales live beside it
/// (see [`Q80Groups`]) so the 512 value bytes stay aligned to cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Q80x16 {
    pub qs: [[u8; 64]; 8],
}

/// A Q8_0 matrix in sixteen-row groups: `qs[g * blocks + b]` with its scales
/// `d[g * blocks + b][r]`.
#[derive(Clone, Debug, Default)]
pub struct Q80Groups {
    pub qs: Vec<Q80x16>,
    pub d: Vec<[f16; GROUP]>,
}

/// One activation block in Q8_1: `d` and `s` are the f16 values of the format, widened
/// (exactly) to f32 once; `s = d * sum(qs)` rounded as GGML rounds it. `qs` and `d` are
/// also the block's Q8_0 quantization (GGML computes both the same way), which the Q4_0
/// and Q5_0 kernels take together with the exact integer `sum` of `qs`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct ActQ81 {
    pub qs: [i8; BLOCK],
    pub d: f32,
    pub s: f32,
    pub sum: i32,
}

/// One activation block in Q8_0 (`d` widened exactly from its f16), with the exact
/// integer `sum` of `qs`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct ActQ80 {
    pub qs: [i8; BLOCK],
    pub d: f32,
    pub sum: i32,
}

/// One activation super-block in Q8_K (GGML's `block_q8_K`): `bsums[j]` is the sum of
/// `qs[16 j..16 j + 16]`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct ActQ8K {
    pub qs: [i8; SUPER],
    pub d: f32,
    pub bsums: [i16; SUPER / 16],
}

impl Default for ActQ8K {
    fn default() -> Self {
        Self {
            qs: [0; SUPER],
            d: 0.0,
            bsums: [0; SUPER / 16],
        }
    }
}

/// GGML's `quantize_row_q8_K` (as candle has it); `xs.len()` must be `out.len() * SUPER`.
pub fn quantize_q8_k(xs: &[f32], out: &mut [ActQ8K]) {
    for (block, xs) in out.iter_mut().zip(xs.chunks_exact(SUPER)) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &x in xs {
            if amax < x.abs() {
                amax = x.abs();
                max = x;
            }
        }
        if amax == 0.0 {
            *block = ActQ8K::default();
            continue;
        }
        let iscale = -127f32 / max;
        for (q, &x) in block.qs.iter_mut().zip(xs) {
            *q = round_i8(iscale * x);
        }
        for (sum, qs) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *sum = qs.iter().map(|&q| q as i16).sum();
        }
        block.d = 1.0 / iscale;
    }
}

/// `x.round() as i8` (half away from zero, saturating) without the call to libm's
/// `roundf` that `f32::round` costs on baseline x86-64: adding the largest f32 below one
/// half, with `x`'s sign, and truncating gives the same integer for every `|x| <= 130`
/// (checked exhaustively over all 2.2e9 such values), and both saturate above 127.5.
#[inline(always)]
pub fn round_i8(x: f32) -> i8 {
    (x + 0.499_999_97_f32.copysign(x)) as i8
}

fn absmax_scale(xs: &[f32]) -> (f32, f32) {
    let amax = xs.iter().fold(0f32, |a, &x| a.max(x.abs()));
    let d = amax / ((1 << 7) - 1) as f32;
    let id = if d != 0f32 { 1. / d } else { 0. };
    (d, id)
}

/// GGML's `quantize_row_q8_1`; `xs.len()` must be `out.len() * BLOCK`.
pub fn quantize_q8_1(xs: &[f32], out: &mut [ActQ81]) {
    for (block, xs) in out.iter_mut().zip(xs.chunks_exact(BLOCK)) {
        let (d, id) = absmax_scale(xs);
        let dh = f16::from_f32(d);
        let mut sum = 0i32;
        for j in 0..BLOCK / 2 {
            let q0 = round_i8(xs[j] * id);
            let q1 = round_i8(xs[j + BLOCK / 2] * id);
            block.qs[j] = q0;
            block.qs[j + BLOCK / 2] = q1;
            sum += q0 as i32 + q1 as i32;
        }
        block.d = dh.to_f32();
        block.s = (f16::from_f32(sum as f32) * dh).to_f32();
        block.sum = sum;
    }
}

/// GGML's `quantize_row_q8_0`; `xs.len()` must be `out.len() * BLOCK`.
pub fn quantize_q8_0(xs: &[f32], out: &mut [ActQ80]) {
    for (block, xs) in out.iter_mut().zip(xs.chunks_exact(BLOCK)) {
        let (d, id) = absmax_scale(xs);
        block.d = f16::from_f32(d).to_f32();
        for (q, &x) in block.qs.iter_mut().zip(xs) {
            *q = round_i8(x * id);
        }
        block.sum = block.qs.iter().map(|&q| q as i32).sum();
    }
}

/// Parses GGML Q4_1 bytes (`rows * cols / 32` blocks of 20 bytes: f16 d, f16 m, 16 bytes
/// of nibbles) into sixteen-row groups; a last partial group is padded with zero rows.
pub fn q4_1_groups(bytes: &[u8], rows: usize, cols: usize) -> Option<Vec<Q41x16>> {
    const SIZE: usize = 20;
    let blocks = cols / BLOCK;
    if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * blocks * SIZE {
        return None;
    }
    let mut groups = vec![Q41x16::default(); rows.div_ceil(GROUP) * blocks];
    for (row, raw_row) in bytes.chunks_exact(blocks * SIZE).enumerate() {
        let r = row % GROUP;
        for (b, raw) in raw_row.chunks_exact(SIZE).enumerate() {
            let g = &mut groups[(row / GROUP) * blocks + b];
            g.d[r] = f16::from_le_bytes([raw[0], raw[1]]);
            g.m[r] = f16::from_le_bytes([raw[2], raw[3]]);
            for (k, chunk) in raw[4..].chunks_exact(4).enumerate() {
                g.qs[k][4 * r..4 * r + 4].copy_from_slice(chunk);
            }
        }
    }
    Some(groups)
}

/// Parses GGML Q8_0 bytes (blocks of 34 bytes: f16 d, 32 signed bytes) into sixteen-row
/// groups; a last partial group is padded with zero rows.
pub fn q8_0_groups(bytes: &[u8], rows: usize, cols: usize) -> Option<Q80Groups> {
    const SIZE: usize = 34;
    let blocks = cols / BLOCK;
    if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * blocks * SIZE {
        return None;
    }
    let n = rows.div_ceil(GROUP) * blocks;
    let mut out = Q80Groups {
        qs: vec![Q80x16 { qs: [[0; 64]; 8] }; n],
        d: vec![[f16::ZERO; GROUP]; n],
    };
    for (row, raw_row) in bytes.chunks_exact(blocks * SIZE).enumerate() {
        let r = row % GROUP;
        for (b, raw) in raw_row.chunks_exact(SIZE).enumerate() {
            let i = (row / GROUP) * blocks + b;
            out.d[i][r] = f16::from_le_bytes([raw[0], raw[1]]);
            for (k, chunk) in raw[2..].chunks_exact(4).enumerate() {
                for (j, &v) in chunk.iter().enumerate() {
                    out.qs[i].qs[k][4 * r + j] = v ^ 0x80;
                }
            }
        }
    }
    Some(out)
}
