//! Activation commitments in the spirit of TOPLOC and their comparison under tolerance,
//! shared by the inference engine (which builds them, `neuroshard_inference::commitment`)
//! and the runtime (which holds no weights and cannot recompute one, but checks a
//! spot-check verdict's evidence with the same [`ActivationCommitment::matches`] the
//! validators use; see `ponw::evidence`).
//!
//! One record per position: for every
//! position a shard serves it keeps the L2 norm of what its layers computed there — the
//! change they made to the hidden state, see `spot_check::work_topk` — and that change's
//! [`TOP_PER_POSITION`] largest-magnitude values (dimension, f16 value): 4 + 4 x 4 = 20
//! bytes per position, 640 per 32 tokens. The hash of the encoded commitment goes into
//! the receipt; a validator who re-runs the shard on the same input recomputes the
//! commitment and compares it with [`ActivationCommitment::matches`].
//!
//! Every position is compared, however little its layers changed it. Version 1 kept the
//! 64 largest values of each 32 positions and never compared a position holding 0-1 of
//! them: `bench verify` caught a worker skipping 2% of its positions on only 50-62% of
//! its receipts, and a validator whose arithmetic differed in the last bits rejected 71%
//! of honest receipts (its 2% tolerance was tighter than that drift on single values).
//!
//! A position's distance is the largest relative difference of its norm and top values
//! (a value one side holds and the other does not counts by how far it exceeds the other
//! side's smallest). Measured on the real model (`bench verify`): honest receipts replayed
//! on the same machine are at 0 (the executor is deterministic), on a validator with
//! last-bit jitter at up to 0.131 (10,068 receipts); a skipped position is at >= 1, the
//! approximations measured (a skipped last layer, Q4_0 weights, windowed attention) at
//! >= 0.4 on every receipt. [`TOLERANCE`] sits between.

use crate::crypto::{blake2_256, Hash};
use half::f16;

/// Positions per 32-token unit the commitment size is quoted in.
pub const CHUNK_POSITIONS: usize = 32;
/// Largest-magnitude values kept per position.
pub const TOP_PER_POSITION: usize = 4;
/// Largest relative difference [`ActivationCommitment::matches`] accepts between a
/// committed value (a position's norm or one of its top values) and the recomputed one.
pub const TOLERANCE: f32 = 0.2;
/// Magnitudes below this count as this much when differences are made relative.
const FLOOR: f32 = 1e-3;
/// Encoding version.
pub const VERSION: u8 = 2;
/// Bytes before the first position: version, first position, end position, values per
/// position.
pub const HEADER: usize = 10;

/// What a shard keeps of one position's work: its L2 norm and its largest-magnitude
/// values (dimension, value), largest first.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionTopK {
    pub norm: f32,
    pub top: Vec<(u16, f32)>,
}

/// How far two commitments are apart, relative: the largest and the mean over their
/// positions of the largest difference of a position's norm and top values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Distance {
    pub max: f32,
    pub mean: f32,
}

/// One committed value: dimension and f16 value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopEntry {
    pub dim: u16,
    pub value: f16,
}

/// One position's commitment.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionCommitment {
    /// L2 norm of the position's work.
    pub norm: f32,
    /// Its largest-magnitude values, largest first.
    pub top: Vec<TopEntry>,
}

/// A commitment to a range of positions' work.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationCommitment {
    pub position_start: u32,
    pub position_end: u32,
    /// One record per position, `position_start..position_end`.
    pub positions: Vec<PositionCommitment>,
}

/// `|x - y|` relative to the larger magnitude (at least [`FLOOR`]); infinite when either
/// is not finite and they are not the same bits.
fn rel(x: f32, y: f32) -> f32 {
    if x.to_bits() == y.to_bits() {
        return 0.0;
    }
    if !x.is_finite() || !y.is_finite() {
        return f32::INFINITY;
    }
    (x - y).abs() / x.abs().max(y.abs()).max(FLOOR)
}

/// How far `a`'s top values are from attesting the same row as `b`'s: a value both hold
/// must agree; a value only `a` holds must be no larger than `b`'s smallest (else `b`
/// would have kept it), up to the tolerance.
fn one_sided(a: &[TopEntry], b: &[TopEntry]) -> f32 {
    let smallest = b
        .iter()
        .map(|e| e.value.to_f32().abs())
        .fold(f32::INFINITY, f32::min);
    a.iter()
        .map(|ea| {
            let x = ea.value.to_f32();
            match b.iter().find(|eb| eb.dim == ea.dim) {
                Some(eb) => rel(x, eb.value.to_f32()),
                None if !x.is_finite() => f32::INFINITY,
                None if x.abs() <= smallest => 0.0,
                None => (x.abs() - smallest) / smallest.max(FLOOR),
            }
        })
        .fold(0.0, f32::max)
}

impl PositionCommitment {
    /// The smallest relative tolerance at which `other` attests the same work.
    pub fn distance(&self, other: &Self) -> f32 {
        if self.top.len() != other.top.len() {
            return f32::INFINITY;
        }
        rel(self.norm, other.norm)
            .max(one_sided(&self.top, &other.top))
            .max(one_sided(&other.top, &self.top))
    }
}

impl ActivationCommitment {
    /// Builds the commitment for positions `start..start + per_position.len()`.
    pub fn from_positions(start: u32, per_position: &[PositionTopK]) -> Self {
        let positions = per_position
            .iter()
            .map(|p| PositionCommitment {
                norm: p.norm,
                top: p
                    .top
                    .iter()
                    .map(|&(dim, v)| TopEntry {
                        dim,
                        value: f16::from_f32(v),
                    })
                    .collect(),
            })
            .collect();
        Self {
            position_start: start,
            position_end: start + per_position.len() as u32,
            positions,
        }
    }

    /// Canonical byte encoding (what is hashed and what a spot check transfers): version,
    /// first and end position, values per position, then per position its norm (f32)
    /// and its values (dimension u16, f16), all little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let per = self.positions.first().map_or(0, |p| p.top.len());
        let mut out = Vec::with_capacity(HEADER + self.positions.len() * (4 + 4 * per));
        out.push(VERSION);
        out.extend_from_slice(&self.position_start.to_le_bytes());
        out.extend_from_slice(&self.position_end.to_le_bytes());
        out.push(per as u8);
        for p in &self.positions {
            out.extend_from_slice(&p.norm.to_le_bytes());
            for e in &p.top {
                out.extend_from_slice(&e.dim.to_le_bytes());
                out.extend_from_slice(&e.value.to_bits().to_le_bytes());
            }
        }
        out
    }

    /// Decodes [`encode`](Self::encode)'s output; `None` when malformed (wrong version,
    /// length or value count, or an empty or backwards position range).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER || bytes[0] != VERSION {
            return None;
        }
        let position_start = u32::from_le_bytes(bytes[1..5].try_into().ok()?);
        let position_end = u32::from_le_bytes(bytes[5..9].try_into().ok()?);
        let per = bytes[9] as usize;
        if per == 0 || per > TOP_PER_POSITION {
            return None;
        }
        let count = position_end.checked_sub(position_start)? as usize;
        if count == 0 {
            return None;
        }
        let size = 4 + 4 * per;
        let body = &bytes[HEADER..];
        if body.len() != count.checked_mul(size)? {
            return None;
        }
        let positions = body
            .chunks_exact(size)
            .map(|p| PositionCommitment {
                norm: f32::from_le_bytes([p[0], p[1], p[2], p[3]]),
                top: p[4..]
                    .chunks_exact(4)
                    .map(|e| TopEntry {
                        dim: u16::from_le_bytes([e[0], e[1]]),
                        value: f16::from_bits(u16::from_le_bytes([e[2], e[3]])),
                    })
                    .collect(),
            })
            .collect();
        Some(Self {
            position_start,
            position_end,
            positions,
        })
    }

    /// The hash that goes into `ReceiptBody::commitment`.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }

    /// Per position, the smallest relative tolerance at which `other` attests the same
    /// work there (`None` for different positions).
    pub fn position_distances(&self, other: &Self) -> Option<Vec<f32>> {
        if self.position_start != other.position_start
            || self.position_end != other.position_end
            || self.positions.len() != other.positions.len()
        {
            return None;
        }
        Some(
            self.positions
                .iter()
                .zip(&other.positions)
                .map(|(a, b)| a.distance(b))
                .collect(),
        )
    }

    /// How far `other` is from attesting the same work: the largest and the mean of the
    /// positions' distances (infinite for different positions).
    pub fn distance(&self, other: &Self) -> Distance {
        match self.position_distances(other) {
            Some(d) if !d.is_empty() => Distance {
                max: d.iter().copied().fold(0.0, f32::max),
                mean: d.iter().map(|&x| f64::from(x)).sum::<f64>() as f32 / d.len() as f32,
            },
            Some(_) => Distance::default(),
            None => Distance {
                max: f32::INFINITY,
                mean: f32::INFINITY,
            },
        }
    }

    /// Whether `other` (recomputed by a validator) attests the same work: same positions,
    /// and at every position the same norm and the same largest values within
    /// [`TOLERANCE`] (relative), where a value one side holds and the other does not is
    /// allowed only at the edge of the other's top values.
    pub fn matches(&self, other: &Self) -> bool {
        self.distance(other).max <= TOLERANCE
    }
}
