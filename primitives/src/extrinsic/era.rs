//! Transaction longevity in Substrate's format (`CheckMortality`): an immortal
//! transaction is valid forever and signs the genesis hash; a mortal one is valid for a
//! `period` of blocks (a power of two from 4 to 65,536) starting at the block its
//! `phase` names, and signs that block's hash, so it cannot be replayed once the period
//! is over. Encoded as one zero byte (immortal) or two little-endian bytes: the low 4
//! bits hold `log2(period) - 1`, the upper 12 the phase divided by `max(1, period /
//! 4096)`.

use crate::units::BlockNumber;
use parity_scale_codec::{Decode, Encode, Error, Input, Output};

/// See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    Immortal,
    /// `(period, phase)`: valid from the block `birth` (the latest block at or before
    /// the current one whose number is `phase` modulo `period`) for `period` blocks.
    Mortal(u64, u64),
}

impl Era {
    /// An era of about `period` blocks (rounded up to a power of two, clamped to 4 ..=
    /// 65,536) that starts at block `current`, with the phase quantized as the encoding
    /// requires for long periods.
    pub fn mortal(period: u64, current: BlockNumber) -> Self {
        let period = period
            .checked_next_power_of_two()
            .unwrap_or(1 << 16)
            .clamp(4, 1 << 16);
        let quantum = (period >> 12).max(1);
        Era::Mortal(period, current % period / quantum * quantum)
    }

    /// The number of the block whose hash a transaction of this era signs, when it is
    /// checked in block `current` (0 for immortal ones: the genesis block).
    pub fn birth(self, current: BlockNumber) -> BlockNumber {
        match self {
            Era::Immortal => 0,
            Era::Mortal(period, phase) => (current.max(phase) - phase) / period * period + phase,
        }
    }

    /// The first block in which a transaction of this era, checked in `current`, is no
    /// longer valid.
    pub fn death(self, current: BlockNumber) -> BlockNumber {
        match self {
            Era::Immortal => BlockNumber::MAX,
            Era::Mortal(period, _) => self.birth(current).saturating_add(period),
        }
    }
}

impl Encode for Era {
    fn encode_to<T: Output + ?Sized>(&self, out: &mut T) {
        match *self {
            Era::Immortal => out.push_byte(0),
            Era::Mortal(period, phase) => {
                let quantum = (period >> 12).max(1);
                let low = (period.trailing_zeros().saturating_sub(1)).clamp(1, 15) as u16;
                let encoded = low | (((phase / quantum) as u16) << 4);
                encoded.encode_to(out);
            }
        }
    }
}

impl Decode for Era {
    fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
        let first = input.read_byte()?;
        if first == 0 {
            return Ok(Era::Immortal);
        }
        let encoded = u64::from(first) | (u64::from(input.read_byte()?) << 8);
        let period = 2u64 << (encoded & 0xf);
        let quantum = (period >> 12).max(1);
        let phase = (encoded >> 4) * quantum;
        if period >= 4 && phase < period {
            Ok(Era::Mortal(period, phase))
        } else {
            Err("an era's phase must be below its period".into())
        }
    }
}

/// Described as Substrate describes it: `Immortal` (index 0) or, for the two-byte
/// mortal encodings, `MortalN(u8)` where `N` is the first byte.
impl scale_info::TypeInfo for Era {
    type Identity = Self;

    fn type_info() -> scale_info::Type {
        let mut variants = scale_info::build::Variants::new().variant("Immortal", |v| v.index(0));
        for first in 1..=255u8 {
            let name = mortal_names()[first as usize - 1];
            variants = variants.variant(name, |v| {
                v.index(first)
                    .fields(scale_info::build::Fields::unnamed().field(|f| f.ty::<u8>()))
            });
        }
        scale_info::Type::builder()
            .path(scale_info::Path::new("Era", "sp_runtime::generic::era"))
            .variant(variants)
    }
}

/// `Mortal1` ..= `Mortal255` (type descriptions need `'static` names: made once).
fn mortal_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        (1..=255)
            .map(|i| &*Box::leak(format!("Mortal{i}").into_boxed_str()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodings_match_substrates() {
        // Values from Substrate's own era tests.
        assert_eq!(Era::Immortal.encode(), vec![0]);
        assert_eq!(Era::mortal(64, 42), Era::Mortal(64, 42));
        assert_eq!(
            Era::mortal(64, 42).encode(),
            vec![5 + 42 % 16 * 16, 42 / 16]
        );
        assert_eq!(
            Era::mortal(32768, 20000).encode(),
            vec![(14 + 2500 % 16 * 16) as u8, (2500 / 16) as u8]
        );
        assert_eq!(Era::mortal(200, 513), Era::Mortal(256, 1));
        assert_eq!(Era::mortal(2, 1), Era::Mortal(4, 1));
        assert_eq!(Era::mortal(4, 5), Era::Mortal(4, 1));
        assert_eq!(
            Era::mortal(1_000_000, 1_000_001),
            Era::Mortal(65536, 1_000_001 % 65536 / 4 * 4)
        );
    }

    #[test]
    fn birth_and_death() {
        let era = Era::mortal(4, 6);
        for current in 6..10 {
            assert_eq!((era.birth(current), era.death(current)), (6, 10));
        }
        assert_ne!(era.birth(10), 6);
        assert_ne!(era.birth(5), 6);
        assert_eq!(
            Era::mortal(4, 3).birth(1),
            3,
            "no underflow below the phase"
        );
        assert_eq!(
            (Era::Immortal.birth(99), Era::Immortal.death(99)),
            (0, u64::MAX)
        );
    }

    #[test]
    fn the_type_description_has_every_first_byte() {
        let names = mortal_names();
        assert_eq!(
            names.iter().collect::<std::collections::HashSet<_>>().len(),
            255
        );
        assert_eq!((names[0], names[254]), ("Mortal1", "Mortal255"));
    }

    proptest! {
        #[test]
        fn mortal_eras_round_trip(period in 0u64..200_000, current in any::<u64>()) {
            let era = Era::mortal(period, current);
            prop_assert_eq!(Era::decode(&mut &era.encode()[..]).unwrap(), era);
        }

        #[test]
        fn any_two_bytes_decode_or_fail_cleanly(a in any::<u8>(), b in any::<u8>()) {
            if let Ok(era) = Era::decode(&mut &[a, b][..]) {
                if a != 0 {
                    prop_assert_eq!(era.encode(), vec![a, b]);
                }
            }
        }
    }
}
