//! Block formats of the quantized weights the executor multiplies with (GGML's Q4_1 and
//! Q8_0, copied out of candle's tensors at load), and the quantization of activation rows
//! to the 8-bit block formats their dot products take (Q8_1 for Q4_1 weights, Q8_0 for
//! Q8_0 weights). The activation quantizers reproduce candle's (and GGML's reference)
//! `quantize_row_q8_1` / `quantize_row_q8_0` bit for bit, so the fused kernels built on
//! them give exactly candle's results.

use half::f16;

/// Values per quantization block (both formats).
pub const BLOCK: usize = 32;

/// Four consecutive weight rows' Q4_1 blocks at the same column block, interleaved so one
/// 80-byte load feeds four dot products: value `i` of row `r` is
/// `d[r] * q + m[r]` with `q` the low nibble of `qs[r][i]` (`i < 16`) or the high nibble
/// of `qs[r][i - 16]`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Q41x4 {
    pub d: [f16; 4],
    pub m: [f16; 4],
    pub qs: [[u8; 16]; 4],
}

/// One Q8_0 weight block: value `i` is `d * qs[i]`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ80 {
    pub d: f16,
    pub qs: [i8; BLOCK],
}

/// One activation block in Q8_1: `d` and `s` are the f16 values of the format, widened
/// (exactly) to f32 once; `s = d * sum(qs)` rounded as GGML rounds it.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct ActQ81 {
    pub qs: [i8; BLOCK],
    pub d: f32,
    pub s: f32,
}

/// One activation block in Q8_0 (`d` widened exactly from its f16).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub struct ActQ80 {
    pub qs: [i8; BLOCK],
    pub d: f32,
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
            let q0 = f32::round(xs[j] * id) as i8;
            let q1 = f32::round(xs[j + BLOCK / 2] * id) as i8;
            block.qs[j] = q0;
            block.qs[j + BLOCK / 2] = q1;
            sum += q0 as i32 + q1 as i32;
        }
        block.d = dh.to_f32();
        block.s = (f16::from_f32(sum as f32) * dh).to_f32();
    }
}

/// GGML's `quantize_row_q8_0`; `xs.len()` must be `out.len() * BLOCK`.
pub fn quantize_q8_0(xs: &[f32], out: &mut [ActQ80]) {
    for (block, xs) in out.iter_mut().zip(xs.chunks_exact(BLOCK)) {
        let (d, id) = absmax_scale(xs);
        block.d = f16::from_f32(d).to_f32();
        for (q, &x) in block.qs.iter_mut().zip(xs) {
            *q = f32::round(x * id) as i8;
        }
    }
}

/// Parses GGML Q4_1 bytes (`rows * cols / 32` blocks of 20 bytes: f16 d, f16 m, 16 bytes
/// of nibbles) into 4-row groups; a last partial group is padded with zero rows.
pub fn q4_1_groups(bytes: &[u8], rows: usize, cols: usize) -> Option<Vec<Q41x4>> {
    const SIZE: usize = 20;
    let blocks = cols / BLOCK;
    if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * blocks * SIZE {
        return None;
    }
    let mut groups = vec![Q41x4::default(); rows.div_ceil(4) * blocks];
    for (r, row) in bytes.chunks_exact(blocks * SIZE).enumerate() {
        for (b, raw) in row.chunks_exact(SIZE).enumerate() {
            let g = &mut groups[(r / 4) * blocks + b];
            g.d[r % 4] = f16::from_le_bytes([raw[0], raw[1]]);
            g.m[r % 4] = f16::from_le_bytes([raw[2], raw[3]]);
            g.qs[r % 4].copy_from_slice(&raw[4..SIZE]);
        }
    }
    Some(groups)
}

/// Parses GGML Q8_0 bytes (blocks of 34 bytes: f16 d, 32 signed bytes), row-major.
pub fn q8_0_blocks(bytes: &[u8], rows: usize, cols: usize) -> Option<Vec<BlockQ80>> {
    const SIZE: usize = 34;
    if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * (cols / BLOCK) * SIZE {
        return None;
    }
    Some(
        bytes
            .chunks_exact(SIZE)
            .map(|raw| {
                let mut qs = [0i8; BLOCK];
                for (q, &b) in qs.iter_mut().zip(&raw[2..]) {
                    *q = b as i8;
                }
                BlockQ80 {
                    d: f16::from_le_bytes([raw[0], raw[1]]),
                    qs,
                }
            })
            .collect(),
    )
}
