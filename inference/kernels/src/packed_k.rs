//! Sixteen-row groups of the K-quant formats Q4_K, Q5_K and Q6_K (256-value
//! super-blocks), parsed at load from GGML's bytes.
//!
//! Each super-block of each row is first decoded into its unsigned quants and its
//! sub-blocks' integer scales (and mins), then interleaved like the 32-value formats:
//! lane `4 r + j` of a 64-byte chunk is row `r`, and each byte carries two values, one
//! of each of a pair of sub-blocks. Scales and mins are kept as bytes in pairs
//! (`[2 r + e]` = sub-block `2c + e` of row `r`), the layout the kernels widen to the
//! 16-bit pairs `vpmaddwd` takes. The groups cost about the bytes of GGML's format
//! (Q4_K 148 per row and super-block against 144, Q5_K 180 against 176, Q6_K 210).

use super::quant::{GROUP, SUPER};
use half::f16;

/// Sixteen rows' Q4_K super-block, also the four low bits of a Q5_K one.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Q4Kx16 {
    /// `qs[c][k][4 r + j]`: low nibble value `64c + 4k + j` of row `r` (sub-block `2c`),
    /// high nibble value `64c + 32 + 4k + j` (sub-block `2c + 1`).
    pub qs: [[[u8; 64]; 8]; 4],
    /// `sc[c][2 r + e]`: the six-bit scale of sub-block `2c + e` of row `r`.
    pub sc: [[u8; 32]; 4],
    /// `mn[c][2 r + e]`: the six-bit min of sub-block `2c + e` of row `r`.
    pub mn: [[u8; 32]; 4],
    pub d: [f16; GROUP],
    pub dmin: [f16; GROUP],
}

impl Default for Q4Kx16 {
    fn default() -> Self {
        Self {
            qs: [[[0; 64]; 8]; 4],
            sc: [[0; 32]; 4],
            mn: [[0; 32]; 4],
            d: [f16::ZERO; GROUP],
            dmin: [f16::ZERO; GROUP],
        }
    }
}

/// Q5_K's fifth bits of one group's super-block: bit `j` of `[c][k][r]` is the high bit
/// of value `64c + 4k + j` of row `r`, bit `4 + j` that of value `64c + 32 + 4k + j`.
pub type HighBitsK = [[[u8; GROUP]; 8]; 4];

/// A Q4_K or Q5_K matrix: entry `g * blocks + b` is group `g`'s super-block `b`; `qh` is
/// empty for Q4_K.
#[derive(Clone, Debug, Default)]
pub struct KGroups {
    pub q: Vec<Q4Kx16>,
    pub qh: Vec<HighBitsK>,
}

/// Sixteen rows' Q6_K super-block (sixteen sub-blocks of sixteen values).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Q6Kx16 {
    /// `ql[c][k][4 r + j]`: low nibble the low four bits of value `32c + 4k + j` of row
    /// `r` (sub-block `2c`), high nibble those of value `32c + 16 + 4k + j`.
    pub ql: [[[u8; 64]; 4]; 8],
    /// `qh[c][h][4 r + j]`: nibble `n` (for `k = 2h + n`) holds in bits 0-1 the top two
    /// bits of value `32c + 4k + j`, in bits 2-3 those of value `32c + 16 + 4k + j`.
    pub qh: [[[u8; 64]; 2]; 8],
    /// `sc[c][2 r + e]`: the signed scale of sub-block `2c + e` of row `r`.
    pub sc: [[i8; 32]; 8],
    pub d: [f16; GROUP],
}

impl Default for Q6Kx16 {
    fn default() -> Self {
        Self {
            ql: [[[0; 64]; 4]; 8],
            qh: [[[0; 64]; 2]; 8],
            sc: [[0; 32]; 8],
            d: [f16::ZERO; GROUP],
        }
    }
}

/// GGML's `get_scale_min_k4`: scale and min of sub-block `j` from the 12 packed bytes.
pub(crate) fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// One Q4_K (144 bytes) or Q5_K (176 bytes) super-block decoded: `d`, `dmin`, the eight
/// scales and mins and the 256 unsigned quants.
type DecodedK = (f16, f16, [u8; 8], [u8; 8], [u8; SUPER]);

fn decode_q4k_q5k(raw: &[u8], high: bool) -> DecodedK {
    let d = f16::from_le_bytes([raw[0], raw[1]]);
    let dmin = f16::from_le_bytes([raw[2], raw[3]]);
    let scales = &raw[4..16];
    let (qh, qs) = if high {
        (&raw[16..48], &raw[48..176])
    } else {
        (&raw[0..0], &raw[16..144])
    };
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        (sc[j], mn[j]) = scale_min(j, scales);
    }
    let mut q = [0u8; SUPER];
    for c in 0..4 {
        for l in 0..32 {
            let b = qs[32 * c + l];
            let (h0, h1) = if high {
                ((qh[l] >> (2 * c)) & 1, (qh[l] >> (2 * c + 1)) & 1)
            } else {
                (0, 0)
            };
            q[64 * c + l] = (b & 0x0F) | h0 << 4;
            q[64 * c + 32 + l] = (b >> 4) | h1 << 4;
        }
    }
    (d, dmin, sc, mn, q)
}

/// Checks the sizes of a K-quant matrix of `size`-byte super-blocks.
fn k_blocks(bytes: &[u8], rows: usize, cols: usize, size: usize) -> Option<usize> {
    let blocks = cols / SUPER;
    (cols.is_multiple_of(SUPER) && bytes.len() == rows * blocks * size).then_some(blocks)
}

/// Parses GGML Q4_K (`high` false) or Q5_K (`high` true) bytes into sixteen-row groups; a
/// last partial group is padded with zero rows.
pub fn q4k_q5k_groups(bytes: &[u8], rows: usize, cols: usize, high: bool) -> Option<KGroups> {
    let size = if high { 176 } else { 144 };
    let blocks = k_blocks(bytes, rows, cols, size)?;
    let n = rows.div_ceil(GROUP) * blocks;
    let mut out = KGroups {
        q: vec![Q4Kx16::default(); n],
        qh: vec![[[[0; GROUP]; 8]; 4]; if high { n } else { 0 }],
    };
    for (row, raw_row) in bytes.chunks_exact(blocks * size).enumerate() {
        let r = row % GROUP;
        for (b, raw) in raw_row.chunks_exact(size).enumerate() {
            let i = (row / GROUP) * blocks + b;
            let (d, dmin, sc, mn, q) = decode_q4k_q5k(raw, high);
            let g = &mut out.q[i];
            g.d[r] = d;
            g.dmin[r] = dmin;
            for c in 0..4 {
                for e in 0..2 {
                    g.sc[c][2 * r + e] = sc[2 * c + e];
                    g.mn[c][2 * r + e] = mn[2 * c + e];
                }
                for k in 0..8 {
                    for j in 0..4 {
                        let (lo, hi) = (q[64 * c + 4 * k + j], q[64 * c + 32 + 4 * k + j]);
                        g.qs[c][k][4 * r + j] = (lo & 0x0F) | (hi & 0x0F) << 4;
                        if high {
                            out.qh[i][c][k][r] |= (lo >> 4) << j | (hi >> 4) << (4 + j);
                        }
                    }
                }
            }
        }
    }
    Some(out)
}

/// One Q6_K super-block (210 bytes) decoded: `d`, the sixteen scales and the 256
/// unsigned quants (the value is `d * scale * (q - 32)`).
fn decode_q6k(raw: &[u8]) -> (f16, [i8; 16], [u8; SUPER]) {
    let (ql, qh, scales) = (&raw[0..128], &raw[128..192], &raw[192..208]);
    let d = f16::from_le_bytes([raw[208], raw[209]]);
    let mut sc = [0i8; 16];
    for (s, &b) in sc.iter_mut().zip(scales) {
        *s = b as i8;
    }
    let mut q = [0u8; SUPER];
    for half in 0..2 {
        let (ql, qh, y) = (&ql[64 * half..], &qh[32 * half..], 128 * half);
        for l in 0..32 {
            q[y + l] = (ql[l] & 0x0F) | (qh[l] & 3) << 4;
            q[y + l + 32] = (ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4;
            q[y + l + 64] = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
            q[y + l + 96] = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
        }
    }
    (d, sc, q)
}

/// Parses GGML Q6_K bytes into sixteen-row groups; a last partial group is padded with
/// zero rows.
pub fn q6k_groups(bytes: &[u8], rows: usize, cols: usize) -> Option<Vec<Q6Kx16>> {
    const SIZE: usize = 210;
    let blocks = k_blocks(bytes, rows, cols, SIZE)?;
    let mut out = vec![Q6Kx16::default(); rows.div_ceil(GROUP) * blocks];
    for (row, raw_row) in bytes.chunks_exact(blocks * SIZE).enumerate() {
        let r = row % GROUP;
        for (b, raw) in raw_row.chunks_exact(SIZE).enumerate() {
            let (d, sc, q) = decode_q6k(raw);
            let g = &mut out[(row / GROUP) * blocks + b];
            g.d[r] = d;
            for c in 0..8 {
                for e in 0..2 {
                    g.sc[c][2 * r + e] = sc[2 * c + e];
                }
                for k in 0..4 {
                    for j in 0..4 {
                        let (lo, hi) = (q[32 * c + 4 * k + j], q[32 * c + 16 + 4 * k + j]);
                        g.ql[c][k][4 * r + j] = (lo & 0x0F) | (hi & 0x0F) << 4;
                        let top = (lo >> 4) | (hi >> 4) << 2;
                        g.qh[c][k / 2][4 * r + j] |= top << (4 * (k % 2));
                    }
                }
            }
        }
    }
    Some(out)
}
