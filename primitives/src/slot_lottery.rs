//! The slot leader lottery: an sr25519 VRF (schnorrkel, through `sp-core`) feeds the
//! chain's randomness, and each slot's leader is drawn from that randomness with chances
//! proportional to bond.
//!
//! Every block carries its author's VRF signature over (the chain randomness before the
//! block, the block's slot). The VRF output is unique for that key and input, so an
//! author cannot grind it (all it can do is withhold its block, which loses the slot), and
//! nobody can compute it before the block appears. The randomness after the block is
//! `blake2(previous || output)`; the leader of any later slot `s` is the validator that
//! [`draw`] picks for (that randomness, `s`), weighted by bond. One leader per slot, so
//! honest validators never fork each other; an empty slot (leader offline) is followed
//! by a fresh draw for the next one. The schedule becomes public one block ahead, when
//! the output that fixes it is published.

use crate::crypto::{blake2_256, AccountId, Hash, Keypair, Public};
use parity_scale_codec::{Decode, Encode};
use sp_core::crypto::{VrfPublic, VrfSecret};
use sp_core::sr25519::vrf::{VrfPreOutput, VrfProof, VrfSignData, VrfTranscript};

pub use sp_core::sr25519::vrf::VrfSignature;

const TRANSCRIPT_LABEL: &[u8] = b"neuroshard/slot-vrf/v1";
const OUTPUT_CONTEXT: &[u8] = b"neuroshard/slot-vrf-output/v1";
const RANDOMNESS_DOMAIN: &[u8] = b"neuroshard/randomness/v1";
const DRAW_DOMAIN: &[u8] = b"neuroshard/leader-draw/v1";

/// The VRF input for `slot` on a chain whose randomness is `randomness`.
fn transcript(randomness: &Hash, slot: u64) -> VrfTranscript {
    VrfTranscript::new(
        TRANSCRIPT_LABEL,
        &[
            (b"randomness", randomness.as_bytes()),
            (b"slot", &slot.to_le_bytes()),
        ],
    )
}

/// The author's VRF signature for `slot` (what goes into the header).
pub fn sign(key: &Keypair, randomness: &Hash, slot: u64) -> VrfSignature {
    key.vrf_sign(&VrfSignData::new(transcript(randomness, slot)))
}

/// The VRF output of `signature`, when it is `author`'s valid VRF signature for `slot`
/// on `randomness`; `None` otherwise (wrong key, slot, randomness or a forged proof).
pub fn verify(
    author: &AccountId,
    randomness: &Hash,
    slot: u64,
    signature: &VrfSignature,
) -> Option<Hash> {
    let public = Public::from_raw(*<AccountId as AsRef<[u8; 32]>>::as_ref(author));
    let input = transcript(randomness, slot);
    if !public.vrf_verify(&VrfSignData::new(input.clone()), signature) {
        return None;
    }
    let bytes: [u8; 32] = public
        .make_bytes(OUTPUT_CONTEXT, &input, &signature.pre_output)
        .ok()?;
    Some(Hash::from(bytes))
}

/// A placeholder signature (all-zero bytes) for the genesis header, which has no author.
/// It never verifies.
pub fn genesis_signature() -> VrfSignature {
    let zeros = [0u8; 96];
    let decoded = (
        VrfPreOutput::decode(&mut &zeros[..32]),
        VrfProof::decode(&mut &zeros[32..]),
    );
    match decoded {
        (Ok(pre_output), Ok(proof)) => VrfSignature { pre_output, proof },
        // Zero is a canonical scalar and any 32 bytes are a pre-output: unreachable.
        _ => unreachable!("all-zero VRF bytes decode"),
    }
}

/// The chain randomness after a block whose VRF output is `output`.
pub fn next_randomness(previous: &Hash, output: &Hash) -> Hash {
    blake2_256(&(RANDOMNESS_DOMAIN, previous, output).encode())
}

/// The index of `slot`'s leader among validators with these `bonds`, drawn from
/// `randomness` with chances proportional to bond (equal chances when every bond is
/// zero). `None` for an empty set.
pub fn draw(randomness: &Hash, slot: u64, bonds: &[u128]) -> Option<usize> {
    pick_weighted(
        &blake2_256(&(DRAW_DOMAIN, randomness, slot).encode()),
        bonds,
    )
}

/// The index drawn by `seed` (a hash no one could choose) among `weights`, with chances
/// proportional to weight (equal chances when every weight is zero). `None` when empty.
pub fn pick_weighted(seed: &Hash, weights: &[u128]) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    let mut wide = [0u8; 16];
    wide.copy_from_slice(&seed.as_bytes()[..16]);
    let ticket = u128::from_le_bytes(wide);
    // Sums beyond u128 (impossible with real balances) saturate: the last entries then
    // share the overflow's range.
    let total = weights.iter().fold(0u128, |sum, b| sum.saturating_add(*b));
    if total == 0 {
        return Some((ticket % weights.len() as u128) as usize);
    }
    // The modulo bias is at most total / 2^128: nil for any real total.
    let mut target = ticket % total;
    for (index, weight) in weights.iter().enumerate() {
        if target < *weight {
            return Some(index);
        }
        target -= weight;
    }
    Some(weights.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keypair_from_uri;
    use proptest::prelude::*;
    use sp_core::Pair as _;

    fn alice() -> (Keypair, AccountId) {
        let key = keypair_from_uri("//Alice").unwrap();
        let account = key.public().into();
        (key, account)
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_slot_and_randomness() {
        let (key, account) = alice();
        let r = blake2_256(b"r");
        let sig = sign(&key, &r, 7);
        let output = verify(&account, &r, 7, &sig).expect("valid");
        // Deterministic: the same key and input give the same output.
        assert_eq!(verify(&account, &r, 7, &sign(&key, &r, 7)), Some(output));
        assert_eq!(verify(&account, &r, 8, &sig), None);
        assert_eq!(verify(&account, &blake2_256(b"s"), 7, &sig), None);
        let bob: AccountId = keypair_from_uri("//Bob").unwrap().public().into();
        assert_eq!(verify(&bob, &r, 7, &sig), None);
        assert_eq!(verify(&account, &r, 7, &genesis_signature()), None);
        // Another slot gives another output.
        let other = verify(&account, &r, 9, &sign(&key, &r, 9)).unwrap();
        assert_ne!(other, output);
    }

    #[test]
    fn draws_follow_the_bonds() {
        let bonds = [1u128, 2, 3, 4];
        let mut wins = [0u32; 4];
        let r = blake2_256(b"draws");
        let slots = 40_000u64;
        for slot in 0..slots {
            wins[draw(&r, slot, &bonds).unwrap()] += 1;
        }
        for (i, w) in wins.iter().enumerate() {
            let expected = slots as f64 * bonds[i] as f64 / 10.0;
            // Binomial standard deviation is at most 100 here; allow five of them.
            assert!(
                (*w as f64 - expected).abs() < 500.0,
                "validator {i}: {w} wins, expected ~{expected}"
            );
        }
        assert_eq!(draw(&r, 0, &[]), None);
        assert!(draw(&r, 3, &[0, 0, 0]).unwrap() < 3);
        // A zero bond never wins while someone has a bond.
        assert!((0..1000).all(|s| draw(&r, s, &[0, 5, 0]) == Some(1)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..128), slot: u64) {
            let (_, account) = alice();
            if let Ok(sig) = VrfSignature::decode(&mut &bytes[..]) {
                prop_assert_eq!(verify(&account, &Hash::zero(), slot, &sig), None);
            }
        }

        #[test]
        fn draw_is_in_range(seed: [u8; 32], slot: u64, bonds in proptest::collection::vec(any::<u128>(), 1..20)) {
            let index = draw(&Hash::from(seed), slot, &bonds).unwrap();
            prop_assert!(index < bonds.len());
        }
    }
}
