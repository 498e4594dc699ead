//! Activation commitments in the spirit of TOPLOC: for every chunk of 32 positions a shard
//! keeps the 64 largest-magnitude values of what its layers computed — the change they
//! made to the hidden states, see `spot_check::work_topk` — (position in chunk,
//! dimension, f16 value; 5 bytes each, ~330 bytes per 32 tokens). The hash of the encoded
//! commitment goes into the receipt; a validator who re-runs the shard on the same input
//! recomputes the commitment and compares it with [`ActivationCommitment::matches`], which
//! tolerates the small numeric drift of a different machine but not different work.

use candle_core::Tensor;
use half::f16;
use neuroshard_primitives::{blake2_256, Hash};

/// Positions per commitment chunk.
pub const CHUNK_POSITIONS: usize = 32;
/// Values kept per chunk.
pub const TOP_K: usize = 64;

/// The top-k candidates of one position: (dimension, value), largest magnitude first.
pub type PositionTopK = Vec<(u16, f32)>;

/// Top-`TOP_K` values of each row of a `(1, seq, hidden)` hidden-state tensor. Every value
/// that can be in a chunk's top-k is in its own position's top-k, so these per-position
/// lists are all a shard needs to keep.
pub fn position_topk(hidden: &Tensor) -> candle_core::Result<Vec<PositionTopK>> {
    let rows = hidden
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut idx: Vec<(u16, f32)> = row
                .iter()
                .enumerate()
                .map(|(i, &v)| (i.min(u16::MAX as usize) as u16, v))
                .collect();
            idx.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            idx.truncate(TOP_K);
            idx
        })
        .collect())
}

/// One entry of a chunk: position within the chunk, dimension, value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopEntry {
    pub pos: u8,
    pub dim: u16,
    pub value: f16,
}

/// A commitment to a range of positions' output activations.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationCommitment {
    pub position_start: u32,
    pub position_end: u32,
    /// One list per chunk of [`CHUNK_POSITIONS`] positions (the last may be shorter).
    pub chunks: Vec<Vec<TopEntry>>,
}

impl ActivationCommitment {
    /// Builds the commitment for positions `start..start + per_position.len()`.
    pub fn from_positions(start: u32, per_position: &[PositionTopK]) -> Self {
        let chunks = per_position
            .chunks(CHUNK_POSITIONS)
            .map(|chunk| {
                let mut all: Vec<TopEntry> = chunk
                    .iter()
                    .enumerate()
                    .flat_map(|(p, list)| {
                        list.iter().map(move |&(dim, v)| TopEntry {
                            pos: p as u8,
                            dim,
                            value: f16::from_f32(v),
                        })
                    })
                    .collect();
                all.sort_by(|a, b| {
                    b.value
                        .to_f32()
                        .abs()
                        .total_cmp(&a.value.to_f32().abs())
                        .then(a.pos.cmp(&b.pos))
                        .then(a.dim.cmp(&b.dim))
                });
                all.truncate(TOP_K);
                all.sort_by_key(|e| (e.pos, e.dim));
                all
            })
            .collect();
        Self {
            position_start: start,
            position_end: start + per_position.len() as u32,
            chunks,
        }
    }

    /// Canonical byte encoding (what is hashed and what a spot check transfers).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.chunks.len() * (1 + TOP_K * 5));
        out.push(1u8); // version
        out.extend_from_slice(&self.position_start.to_le_bytes());
        out.extend_from_slice(&self.position_end.to_le_bytes());
        for chunk in &self.chunks {
            out.push(chunk.len() as u8);
            for e in chunk {
                out.push(e.pos);
                out.extend_from_slice(&e.dim.to_le_bytes());
                out.extend_from_slice(&e.value.to_bits().to_le_bytes());
            }
        }
        out
    }

    /// Decodes [`encode`](Self::encode)'s output; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != 1 || rest.len() < 8 {
            return None;
        }
        let position_start = u32::from_le_bytes(rest[0..4].try_into().ok()?);
        let position_end = u32::from_le_bytes(rest[4..8].try_into().ok()?);
        let mut rest = &rest[8..];
        let mut chunks = Vec::new();
        while let Some((&n, tail)) = rest.split_first() {
            let need = n as usize * 5;
            if tail.len() < need {
                return None;
            }
            let chunk = tail[..need]
                .chunks_exact(5)
                .map(|c| TopEntry {
                    pos: c[0],
                    dim: u16::from_le_bytes([c[1], c[2]]),
                    value: f16::from_bits(u16::from_le_bytes([c[3], c[4]])),
                })
                .collect();
            chunks.push(chunk);
            rest = &tail[need..];
        }
        let expected =
            (position_end.checked_sub(position_start)? as usize).div_ceil(CHUNK_POSITIONS);
        (chunks.len() == expected).then_some(Self {
            position_start,
            position_end,
            chunks,
        })
    }

    /// The hash that goes into `ReceiptBody::commitment`.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }

    /// Whether `other` (recomputed by a validator) attests the same work: same positions,
    /// at least 90% of each chunk's top entries in common, common values within 2%
    /// relative (plus a small absolute slack), and no position that holds two or more
    /// entries on either side without one in common (a position whose layers were
    /// skipped loses all of its entries, while rounding only swaps entries at the edge of
    /// the top-k).
    pub fn matches(&self, other: &Self) -> bool {
        if self.position_start != other.position_start
            || self.position_end != other.position_end
            || self.chunks.len() != other.chunks.len()
        {
            return false;
        }
        self.chunks.iter().zip(&other.chunks).all(|(a, b)| {
            let mut common = 0usize;
            // Per position in the chunk: entries in `a`, in `b`, in both.
            let mut per_position = [(0u8, 0u8, 0u8); CHUNK_POSITIONS];
            for eb in b {
                if let Some(p) = per_position.get_mut(eb.pos as usize) {
                    p.1 = p.1.saturating_add(1);
                }
            }
            for ea in a {
                let Some(p) = per_position.get_mut(ea.pos as usize) else {
                    return false;
                };
                p.0 = p.0.saturating_add(1);
                if let Some(eb) = b.iter().find(|eb| eb.pos == ea.pos && eb.dim == ea.dim) {
                    let (x, y) = (ea.value.to_f32(), eb.value.to_f32());
                    if (x - y).abs() > 0.02 * x.abs().max(y.abs()) + 1e-2 {
                        return false;
                    }
                    common += 1;
                    p.2 = p.2.saturating_add(1);
                }
            }
            let lost_position = per_position
                .iter()
                .any(|&(na, nb, both)| (na >= 2 || nb >= 2) && both == 0);
            !lost_position && common * 10 >= a.len().max(b.len()) * 9
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn hidden(seq: usize, seed: u32) -> Tensor {
        let data: Vec<f32> = (0..seq * 96)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 100.0 - 10.0)
            .collect();
        Tensor::from_vec(data, (1, seq, 96), &Device::Cpu).unwrap()
    }

    #[test]
    fn commitment_round_trips_and_tolerates_small_drift() {
        let h = hidden(70, 1);
        let c = ActivationCommitment::from_positions(5, &position_topk(&h).unwrap());
        assert_eq!(
            (c.position_start, c.position_end, c.chunks.len()),
            (5, 75, 3)
        );
        assert!(c.chunks.iter().all(|ch| ch.len() == TOP_K));
        assert_eq!(ActivationCommitment::decode(&c.encode()), Some(c.clone()));
        let drifted = (h.clone() * 1.001).unwrap();
        let d = ActivationCommitment::from_positions(5, &position_topk(&drifted).unwrap());
        assert!(c.matches(&d));
        // Rounding noise of about 0.1% on every value, as another machine's kernels give.
        let noise: Vec<f32> = (0..70 * 96)
            .map(|i| 1.0 + (((i as u32).wrapping_mul(40503) % 201) as f32 - 100.0) * 1e-5)
            .collect();
        let noise = Tensor::from_vec(noise, (1, 70, 96), &Device::Cpu).unwrap();
        let noisy = (h.clone() * noise).unwrap();
        let n = ActivationCommitment::from_positions(5, &position_topk(&noisy).unwrap());
        assert!(c.matches(&n));
        // One position replaced by other values (its layers skipped) does not pass.
        let mut rows = h.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let big = rows[3].iter().fold(0f32, |m, v| m.max(v.abs()));
        rows[3] = rows[3].iter().map(|v| -v * 0.5 + big * 0.01).collect();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        let skipped = Tensor::from_vec(flat, (1, 70, 96), &Device::Cpu).unwrap();
        let s = ActivationCommitment::from_positions(5, &position_topk(&skipped).unwrap());
        assert!(!c.matches(&s));
        assert_ne!(
            c.hash(),
            ActivationCommitment::from_positions(6, &position_topk(&h).unwrap()).hash()
        );
        let other =
            ActivationCommitment::from_positions(5, &position_topk(&hidden(70, 99)).unwrap());
        assert!(!c.matches(&other));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ActivationCommitment::decode(&bytes);
        }
    }
}
