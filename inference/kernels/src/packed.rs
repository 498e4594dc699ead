//! Sixteen-row groups of the 32-value block formats Q4_0, Q5_0 and Q5_1 and of the
//! 16-bit float formats F16 and BF16, parsed at load from GGML's bytes.
//!
//! The nibble formats share one layout, the one [`super::quant::Q41x16`] uses for Q4_1:
//! lane `4 r + j` of each 64-byte chunk is row `r` of the group, its low nibble value
//! `4k + j` of the block and its high nibble value `16 + 4k + j`. The Q5 formats keep
//! their fifth bits beside it, one byte per row and chunk, so they cost the same bytes
//! as in GGML's format. The float formats are interleaved by column: sixteen rows' values
//! of one column are contiguous.

use super::quant::{BLOCK, GROUP};
use half::f16;

/// Sixteen rows' low four bits of one 32-value block: `qs[k][4 r + j]` holds value
/// `4k + j` of row `r` in its low nibble and value `16 + 4k + j` in its high nibble.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Nibbles {
    pub qs: [[u8; 64]; 4],
}

impl Default for Nibbles {
    fn default() -> Self {
        Self { qs: [[0; 64]; 4] }
    }
}

/// A Q4_0, Q5_0 or Q5_1 matrix in sixteen-row groups: entry `g * blocks + b` is group
/// `g`'s column block `b` in each vector.
#[derive(Clone, Debug, Default)]
pub struct NibbleGroups {
    pub qs: Vec<Nibbles>,
    /// Fifth bits (empty for Q4_0): bit `j` of `qh[i][k][r]` is the high bit of value
    /// `4k + j` of row `r`, bit `4 + j` that of value `16 + 4k + j`.
    pub qh: Vec<[[u8; GROUP]; 4]>,
    /// Scales.
    pub d: Vec<[f16; GROUP]>,
    /// Offsets (Q5_1 only; empty otherwise).
    pub m: Vec<[f16; GROUP]>,
}

/// The 32-value nibble formats without a kernel of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NibbleFormat {
    /// `d * (q - 8)`, q of four bits.
    Q4_0,
    /// `d * (q - 16)`, q of five bits.
    Q5_0,
    /// `d * q + m`, q of five bits.
    Q5_1,
}

impl NibbleFormat {
    /// Bytes of one GGML block.
    fn size(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
        }
    }

    /// True for the five-bit formats.
    pub fn high(self) -> bool {
        self != Self::Q4_0
    }

    /// True when the format has an offset `m` per block.
    pub fn has_min(self) -> bool {
        self == Self::Q5_1
    }
}

/// One GGML block decoded: scale, offset (zero for the `_0` formats) and the 32 unsigned
/// quants.
fn decode(format: NibbleFormat, raw: &[u8]) -> (f16, f16, [u8; BLOCK]) {
    let d = f16::from_le_bytes([raw[0], raw[1]]);
    let word = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
    let (m, qh, qs) = match format {
        NibbleFormat::Q4_0 => (f16::ZERO, 0, &raw[2..18]),
        NibbleFormat::Q5_0 => (f16::ZERO, word(2), &raw[6..22]),
        NibbleFormat::Q5_1 => (f16::from_le_bytes([raw[2], raw[3]]), word(4), &raw[8..24]),
    };
    let mut q = [0u8; BLOCK];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = (b & 0x0F) | (((qh >> j) & 1) as u8) << 4;
        q[j + 16] = (b >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
    }
    (d, m, q)
}

/// Parses GGML Q4_0 / Q5_0 / Q5_1 bytes into sixteen-row groups; a last partial group is
/// padded with zero rows. `None` when the sizes do not match.
pub fn nibble_groups(
    format: NibbleFormat,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Option<NibbleGroups> {
    let size = format.size();
    let blocks = cols / BLOCK;
    if !cols.is_multiple_of(BLOCK) || bytes.len() != rows * blocks * size {
        return None;
    }
    let n = rows.div_ceil(GROUP) * blocks;
    let mut out = NibbleGroups {
        qs: vec![Nibbles::default(); n],
        qh: vec![[[0; GROUP]; 4]; if format.high() { n } else { 0 }],
        d: vec![[f16::ZERO; GROUP]; n],
        m: vec![[f16::ZERO; GROUP]; if format.has_min() { n } else { 0 }],
    };
    for (row, raw_row) in bytes.chunks_exact(blocks * size).enumerate() {
        let r = row % GROUP;
        for (b, raw) in raw_row.chunks_exact(size).enumerate() {
            let i = (row / GROUP) * blocks + b;
            let (d, m, q) = decode(format, raw);
            out.d[i][r] = d;
            if format.has_min() {
                out.m[i][r] = m;
            }
            for k in 0..4 {
                for j in 0..4 {
                    let (lo, hi) = (q[4 * k + j], q[16 + 4 * k + j]);
                    out.qs[i].qs[k][4 * r + j] = (lo & 0x0F) | (hi & 0x0F) << 4;
                    if format.high() {
                        out.qh[i][k][r] |= (lo >> 4) << j | (hi >> 4) << (4 + j);
                    }
                }
            }
        }
    }
    Some(out)
}

/// The 16-bit float formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfFormat {
    F16,
    Bf16,
}

impl HalfFormat {
    /// The value of one stored bit pattern (exact).
    #[inline(always)]
    pub fn widen(self, bits: u16) -> f32 {
        match self {
            Self::F16 => f16::from_bits(bits).to_f32(),
            Self::Bf16 => f32::from_bits((bits as u32) << 16),
        }
    }
}

/// Parses little-endian 16-bit values (`rows * cols` of them) into sixteen-row groups
/// interleaved by column: entry `g * cols + c` holds column `c` of rows `16 g..16 g + 16`
/// (a last partial group is padded with zeros).
pub fn half_groups(bytes: &[u8], rows: usize, cols: usize) -> Option<Vec<[u16; GROUP]>> {
    if bytes.len() != rows * cols * 2 {
        return None;
    }
    let mut out = vec![[0u16; GROUP]; rows.div_ceil(GROUP) * cols];
    for (row, raw_row) in bytes.chunks_exact(cols * 2).enumerate() {
        let (g, r) = (row / GROUP, row % GROUP);
        for (c, v) in raw_row.chunks_exact(2).enumerate() {
            out[g * cols + c][r] = u16::from_le_bytes([v[0], v[1]]);
        }
    }
    Some(out)
}
