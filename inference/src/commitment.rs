//! Activation commitments in the spirit of TOPLOC, one record per position: for every
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
//!
//! The commitment types and their comparison live in `neuroshard_primitives::commitment`
//! (the chain checks verdicts' evidence with them); this module adds building them from
//! a tensor.

use candle_core::Tensor;
pub use neuroshard_primitives::commitment::*;

/// The [`PositionTopK`] of each row of a `(1, seq, hidden)` tensor.
pub fn position_topk(hidden: &Tensor) -> candle_core::Result<Vec<PositionTopK>> {
    let rows = hidden
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .map(|row| {
            let norm = row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>();
            let mut idx: Vec<(u16, f32)> = row
                .iter()
                .enumerate()
                .map(|(i, &v)| (i.min(u16::MAX as usize) as u16, v))
                .collect();
            idx.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
            idx.truncate(TOP_PER_POSITION);
            PositionTopK {
                norm: norm.sqrt() as f32,
                top: idx,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use half::f16;
    use neuroshard_primitives::commitment::{HEADER, VERSION};
    use proptest::prelude::*;

    const WIDTH: usize = 96;

    fn rows(seq: usize, seed: u32) -> Vec<Vec<f32>> {
        (0..seq)
            .map(|p| {
                (0..WIDTH)
                    .map(|d| {
                        let i = (p * WIDTH + d) as u32;
                        ((i.wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 100.0 - 10.0
                    })
                    .collect()
            })
            .collect()
    }

    fn commit(start: u32, rows: &[Vec<f32>]) -> ActivationCommitment {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (1, rows.len(), WIDTH), &Device::Cpu).unwrap();
        ActivationCommitment::from_positions(start, &position_topk(&t).unwrap())
    }

    fn scaled(rows: &[Vec<f32>], f: impl Fn(usize, usize) -> f32) -> Vec<Vec<f32>> {
        rows.iter()
            .enumerate()
            .map(|(p, r)| r.iter().enumerate().map(|(d, v)| v * f(p, d)).collect())
            .collect()
    }

    #[test]
    fn commitment_round_trips_and_tolerates_small_drift() {
        let h = rows(70, 1);
        let c = commit(5, &h);
        assert_eq!(
            (c.position_start, c.position_end, c.positions.len()),
            (5, 75, 70)
        );
        assert!(c.positions.iter().all(|p| p.top.len() == TOP_PER_POSITION));
        assert_eq!(c.encode().len(), HEADER + 70 * (4 + 4 * TOP_PER_POSITION));
        assert_eq!(ActivationCommitment::decode(&c.encode()), Some(c.clone()));
        assert!(c.matches(&commit(5, &scaled(&h, |_, _| 1.001))));
        // Rounding noise of about 1% on every value, more than another machine's kernels
        // give.
        let noise = |p: usize, d: usize| {
            1.0 + (((p * WIDTH + d) as u32).wrapping_mul(40503) % 201) as f32 * 1e-4 - 0.01
        };
        assert!(c.matches(&commit(5, &scaled(&h, noise))));
        assert_ne!(c.hash(), commit(6, &h).hash());
        assert!(!c.matches(&commit(6, &h)));
        assert!(!c.matches(&commit(5, &rows(70, 99))));
    }

    /// The hole of version 1: with one position of massive activations (an attention
    /// sink) in a chunk, a chunk-wide top-64 held no value of the quiet positions, so a
    /// worker could return their inputs unchanged. Every position is compared now.
    #[test]
    fn a_skipped_quiet_position_fails() {
        let h = scaled(&rows(32, 7), |p, _| if p == 0 { 1000.0 } else { 1.0 });
        let c = commit(0, &h);
        let mut skipped = h.clone();
        skipped[17] = vec![0.0; WIDTH];
        assert!(!c.matches(&commit(0, &skipped)));
        // Half the work on a quiet position (an approximation) fails too.
        let halved = scaled(&h, |p, _| if p == 9 { 0.5 } else { 1.0 });
        assert!(!c.matches(&commit(0, &halved)));
        // 30% off on one value of one position.
        let mut bent = h.clone();
        let top = c.positions[3].top[0].dim as usize;
        bent[3][top] *= 1.3;
        assert!(!c.matches(&commit(0, &bent)));
        // A largest value the other side lacks: far above that side's smallest.
        let mut spiked = h.clone();
        spiked[5][0] = 40.0;
        assert!(!c.matches(&commit(0, &spiked)));
    }

    #[test]
    fn non_finite_claims_never_match() {
        let h = rows(4, 3);
        let c = commit(0, &h);
        for bad in [f32::NAN, f32::INFINITY] {
            let mut claim = c.clone();
            claim.positions[1].norm = bad;
            assert!(!claim.matches(&c) && !c.matches(&claim));
            let mut claim = c.clone();
            claim.positions[2].top[0].value = f16::from_f32(bad);
            assert!(!claim.matches(&c) && !c.matches(&claim));
        }
    }

    #[test]
    fn malformed_bytes_are_rejected() {
        let c = commit(3, &rows(5, 2));
        let bytes = c.encode();
        let mut v1 = bytes.clone();
        v1[0] = 1;
        assert_eq!(ActivationCommitment::decode(&v1), None, "version 1");
        assert_eq!(
            ActivationCommitment::decode(&bytes[..bytes.len() - 1]),
            None
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(ActivationCommitment::decode(&long), None);
        for per in [0u8, TOP_PER_POSITION as u8 + 1] {
            let mut b = bytes.clone();
            b[9] = per;
            assert_eq!(ActivationCommitment::decode(&b), None);
        }
        let mut backwards = bytes.clone();
        backwards[1..5].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(ActivationCommitment::decode(&backwards), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = ActivationCommitment::decode(&bytes);
        }

        #[test]
        fn hostile_headers_never_panic(
            start in any::<u32>(),
            end in any::<u32>(),
            per in any::<u8>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = vec![VERSION];
            bytes.extend_from_slice(&start.to_le_bytes());
            bytes.extend_from_slice(&end.to_le_bytes());
            bytes.push(per);
            bytes.extend_from_slice(&body);
            if let Some(c) = ActivationCommitment::decode(&bytes) {
                prop_assert_eq!(c.encode(), bytes);
            }
        }
    }
}
