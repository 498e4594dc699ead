//! The wire form of a pseudo-gradient: a small header (magic, version, element type,
//! element count) followed by little-endian `f32` or `f16` values. Decoding is strict:
//! bytes come from other nodes, so wrong magic, unknown versions or types, a length that
//! disagrees with the header or the expected adapter size, payloads over the size cap and
//! non-finite values are all errors. The pseudo-gradient's identity (what gradient
//! receipts sign) is the blake2-256 of the encoded bytes.

use crate::error::{Result, TrainingError};
use half::f16;
use neuroshard_primitives::{blake2_256, Hash};

const MAGIC: &[u8; 4] = b"NSPG";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 4;

/// Default cap on one encoded pseudo-gradient (64 MiB).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// Element type on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFloat {
    F32,
    /// Half the bytes; values are rounded to f16 (every holder aggregates the decoded
    /// values, its own included, so all of them stay in step).
    F16,
}

impl WireFloat {
    fn code(self) -> u8 {
        match self {
            WireFloat::F32 => 0,
            WireFloat::F16 => 1,
        }
    }

    fn width(self) -> usize {
        match self {
            WireFloat::F32 => 4,
            WireFloat::F16 => 2,
        }
    }
}

/// Encodes `values` (at most `max_bytes` in total).
pub fn encode(values: &[f32], wire: WireFloat, max_bytes: usize) -> Result<Vec<u8>> {
    let total = HEADER_LEN + values.len() * wire.width();
    let count = u32::try_from(values.len())
        .ok()
        .filter(|_| total <= max_bytes)
        .ok_or_else(|| {
            TrainingError::BadPseudoGradient(format!(
                "{} values take {total} bytes, over the cap of {max_bytes}",
                values.len()
            ))
        })?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(TrainingError::BadPseudoGradient(format!(
            "value #{i} is not finite"
        )));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(wire.code());
    out.extend_from_slice(&count.to_le_bytes());
    match wire {
        WireFloat::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        WireFloat::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
    }
    Ok(out)
}

/// Decodes a pseudo-gradient that must hold exactly `expected_len` values.
pub fn decode(bytes: &[u8], expected_len: usize, max_bytes: usize) -> Result<Vec<f32>> {
    let bad = |why: String| TrainingError::BadPseudoGradient(why);
    if bytes.len() > max_bytes {
        return Err(bad(format!(
            "{} bytes, over the cap of {max_bytes}",
            bytes.len()
        )));
    }
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(bad("not a pseudo-gradient (bad magic)".into()));
    }
    if bytes[4] != VERSION {
        return Err(bad(format!("unknown version {}", bytes[4])));
    }
    let wire = match bytes[5] {
        0 => WireFloat::F32,
        1 => WireFloat::F16,
        other => return Err(bad(format!("unknown element type {other}"))),
    };
    let mut count = [0u8; 4];
    count.copy_from_slice(&bytes[6..10]);
    let count = u32::from_le_bytes(count) as usize;
    if count != expected_len {
        return Err(bad(format!(
            "{count} values, the adapter has {expected_len}"
        )));
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() != count.saturating_mul(wire.width()) {
        return Err(bad(format!(
            "{} payload bytes for {count} values of {} bytes",
            body.len(),
            wire.width()
        )));
    }
    let values: Vec<f32> = match wire {
        WireFloat::F32 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        WireFloat::F16 => body
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("value #{i} is not finite")));
    }
    Ok(values)
}

/// The identity of an encoded pseudo-gradient.
pub fn hash(bytes: &[u8]) -> Hash {
    blake2_256(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_malformed_input() {
        let ok = encode(&[1.0, -2.0, 0.5], WireFloat::F32, 1024).unwrap();
        assert_eq!(decode(&ok, 3, 1024).unwrap(), vec![1.0, -2.0, 0.5]);
        assert!(decode(&ok, 4, 1024).is_err(), "wrong expected length");
        assert!(decode(&ok[..ok.len() - 1], 3, 1024).is_err(), "truncated");
        assert!(decode(&ok, 3, ok.len() - 1).is_err(), "over the cap");
        let mut bad = ok.clone();
        bad[0] = b'X';
        assert!(decode(&bad, 3, 1024).is_err(), "magic");
        let mut bad = ok.clone();
        bad[4] = 9;
        assert!(decode(&bad, 3, 1024).is_err(), "version");
        let mut bad = ok.clone();
        bad[5] = 7;
        assert!(decode(&bad, 3, 1024).is_err(), "element type");
        let mut nan = ok.clone();
        nan[10..14].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(decode(&nan, 3, 1024).is_err(), "NaN");
        assert!(encode(&[f32::INFINITY], WireFloat::F32, 1024).is_err());
        assert!(
            encode(&[0.0; 100], WireFloat::F32, 100).is_err(),
            "cap on encode"
        );
    }

    proptest! {
        #[test]
        fn f32_round_trips_exactly(values in proptest::collection::vec(-1e6f32..1e6, 0..200)) {
            let bytes = encode(&values, WireFloat::F32, DEFAULT_MAX_BYTES).unwrap();
            prop_assert_eq!(bytes.len(), HEADER_LEN + 4 * values.len());
            prop_assert_eq!(decode(&bytes, values.len(), DEFAULT_MAX_BYTES).unwrap(), values);
        }

        #[test]
        fn f16_round_trips_within_half_precision(values in proptest::collection::vec(-100f32..100.0, 0..200)) {
            let bytes = encode(&values, WireFloat::F16, DEFAULT_MAX_BYTES).unwrap();
            prop_assert_eq!(bytes.len(), HEADER_LEN + 2 * values.len());
            let back = decode(&bytes, values.len(), DEFAULT_MAX_BYTES).unwrap();
            for (a, b) in values.iter().zip(&back) {
                prop_assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-4, "{} vs {}", a, b);
            }
            // Re-encoding decoded values is stable, so every holder hashes the same bytes.
            prop_assert_eq!(encode(&back, WireFloat::F16, DEFAULT_MAX_BYTES).unwrap(), bytes);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..16) {
            let _ = decode(&bytes, n, 1024);
        }
    }
}
