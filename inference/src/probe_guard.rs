//! Telling another account's capacity probe from a client's input. A probe's input is a
//! function of the minute's seed and the probed account (see [`crate::probe`]), so a
//! provider can compute every other worker's probe input of the current minute and
//! refuse a request that carries one: a relayer that forwards its own probe to an honest
//! provider as an ordinary session gets nothing back, and its minute is not credited.
//!
//! The comparison is exact for token ids (first shard) and near for hidden states:
//! [`FINGERPRINT_WIDTH`] leading values of each position are kept, and a request whose
//! rows are within [`NEAR`] of the probe's at the same positions (mean absolute
//! difference; independent inputs in [-1, 1) differ by about 0.67) is a match. Noise
//! small enough for the answer to pass the prober's check cannot move the input that far.

use crate::messages::{ShardInput, WireDType};
use crate::probe::probe_input;
use neuroshard_primitives::{Hash, LayerRange};

/// Leading hidden values of each position kept for the comparison.
pub const FINGERPRINT_WIDTH: usize = 16;
/// Mean absolute difference under which hidden rows count as the same input.
pub const NEAR: f32 = 0.25;

/// One probe input of the current minute, reduced to what a match needs.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeFingerprint {
    Tokens(Vec<u32>),
    Hidden(Vec<[f32; FINGERPRINT_WIDTH]>),
}

impl ProbeFingerprint {
    /// The fingerprint of the probe input of `seed` (see [`probe_input`]).
    pub fn new(seed: &Hash, layers: LayerRange, dims: (usize, usize), positions: usize) -> Self {
        match probe_input(seed, layers, dims, positions) {
            ShardInput::Tokens(t) => Self::Tokens(t),
            ShardInput::Hidden(a) => {
                let hidden = dims.0.max(1);
                let rows = a
                    .data
                    .chunks_exact(4 * hidden)
                    .map(|row| leading_values(row, WireDType::F32))
                    .collect();
                Self::Hidden(rows)
            }
        }
    }

    /// True when `input`, starting at position `start_pos`, carries (nearly) this probe's
    /// input at the same positions.
    pub fn matches(&self, start_pos: u32, input: &ShardInput) -> bool {
        let start = start_pos as usize;
        match (self, input) {
            (Self::Tokens(ours), ShardInput::Tokens(theirs)) => {
                let ours = ours.get(start..).unwrap_or_default();
                let n = ours.len().min(theirs.len());
                // Half the compared tokens or more: changing the rest changes their
                // outputs, which then fail the prober's check.
                n > 0 && 2 * ours.iter().zip(theirs).filter(|(a, b)| a == b).count() >= n
            }
            (Self::Hidden(ours), ShardInput::Hidden(a)) => {
                let hidden = a.shape.get(2).copied().unwrap_or(0) as usize;
                let width = match a.dtype {
                    WireDType::F32 => 4,
                    WireDType::F16 => 2,
                };
                if hidden < FINGERPRINT_WIDTH || a.data.len() % (width * hidden) != 0 {
                    return false;
                }
                let rows = a.data.chunks_exact(width * hidden);
                let ours = ours.get(start..).unwrap_or_default();
                let diffs: Vec<f32> = ours
                    .iter()
                    .zip(rows)
                    .map(|(o, row)| {
                        let t = leading_values(row, a.dtype);
                        o.iter().zip(&t).map(|(x, y)| (x - y).abs()).sum::<f32>()
                            / FINGERPRINT_WIDTH as f32
                    })
                    .collect();
                !diffs.is_empty() && diffs.iter().sum::<f32>() / (diffs.len() as f32) < NEAR
            }
            _ => false,
        }
    }
}

/// The first [`FINGERPRINT_WIDTH`] values of one little-endian row (zeros past its end).
fn leading_values(row: &[u8], dtype: WireDType) -> [f32; FINGERPRINT_WIDTH] {
    let mut out = [0.0; FINGERPRINT_WIDTH];
    match dtype {
        WireDType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WireDType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Activations;

    const DIMS: (usize, usize) = (64, 1000);

    fn hidden(seed: u8, positions: usize) -> (ProbeFingerprint, Activations) {
        let layers = LayerRange::new(10, 20).unwrap();
        let seed = Hash::repeat_byte(seed);
        let ShardInput::Hidden(a) = probe_input(&seed, layers, DIMS, positions) else {
            panic!("hidden input expected")
        };
        (ProbeFingerprint::new(&seed, layers, DIMS, positions), a)
    }

    #[test]
    fn a_probe_input_matches_exactly_in_pieces_and_with_small_noise_and_others_do_not() {
        let (fp, a) = hidden(1, 96);
        assert!(fp.matches(0, &ShardInput::Hidden(a.clone())));
        // The second half sent alone, at its own positions.
        let row = 4 * DIMS.0;
        let mut tail = a.clone();
        tail.shape[1] = 48;
        tail.data = a.data[48 * row..].to_vec();
        assert!(fp.matches(48, &ShardInput::Hidden(tail.clone())));
        assert!(
            !fp.matches(0, &ShardInput::Hidden(tail)),
            "positions differ"
        );
        // Noise of 0.05 on every value.
        let mut noisy = a.clone();
        for (i, b) in noisy.data.chunks_exact_mut(4).enumerate() {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let noise = if i % 2 == 0 { 0.05 } else { -0.05 };
            b.copy_from_slice(&(v + noise).to_le_bytes());
        }
        assert!(fp.matches(0, &ShardInput::Hidden(noisy)));
        // Another account's probe, and a client's input.
        let (_, other) = hidden(2, 96);
        assert!(!fp.matches(0, &ShardInput::Hidden(other)));
    }

    #[test]
    fn token_probes_match_when_most_tokens_agree() {
        let layers = LayerRange::new(0, 10).unwrap();
        let seed = Hash::repeat_byte(3);
        let fp = ProbeFingerprint::new(&seed, layers, DIMS, 96);
        let ShardInput::Tokens(t) = probe_input(&seed, layers, DIMS, 96) else {
            panic!("tokens expected")
        };
        assert!(fp.matches(0, &ShardInput::Tokens(t.clone())));
        let mut changed = t.clone();
        changed[95] = changed[95].wrapping_add(1);
        assert!(fp.matches(0, &ShardInput::Tokens(changed)));
        assert!(fp.matches(32, &ShardInput::Tokens(t[32..].to_vec())));
        assert!(!fp.matches(0, &ShardInput::Tokens(vec![1, 2, 3, 4])));
    }
}
