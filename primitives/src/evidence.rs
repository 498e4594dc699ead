//! The evidence a spot-check verdict carries, which the chain checks (`ponw::evidence`).
//!
//! A worker asked for a sampled receipt's material signs a [`MaterialStatement`]: "for
//! receipt R I handed over inputs hashing to I and a commitment hashing to C". The checker
//! cannot invent what the worker said, and the worker cannot deny it: a statement that
//! contradicts the worker's own receipt (I or C not the receipt's) convicts it by its own
//! signature. A checker that re-ran the layers also hands in the worker's committed
//! commitment (its bytes hash to C) and the commitment it recomputed; the chain decodes
//! both and compares them with the validators' own tolerance
//! ([`crate::commitment::ActivationCommitment::matches`]).

use crate::crypto::{blake2_256, verify, AccountId, Hash, Keypair, Signature};
use parity_scale_codec::{Decode, Encode};
use sp_core::Pair as _;

/// Domain separator of [`MaterialStatement`] signatures (never valid as a receipt's).
const STATEMENT_DOMAIN: &[u8] = b"neuroshard/spot-check/material/v1";

/// What a worker handed a checker for one receipt, in hashes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct MaterialStatement {
    /// The receipt's id (`ReceiptBody::id`).
    pub receipt: Hash,
    /// Digest of the inputs handed over, over all their positions (for honest material
    /// the receipt's `input_commitment`).
    pub inputs: Hash,
    /// Hash of the encoded commitment handed over (for honest material the receipt's
    /// `commitment`).
    pub commitment: Hash,
}

impl MaterialStatement {
    /// The statement for `receipt` of material whose inputs digest to `inputs` and whose
    /// encoded commitment is `commitment`.
    pub fn of(receipt: Hash, inputs: Hash, commitment: &[u8]) -> Self {
        Self {
            receipt,
            inputs,
            commitment: blake2_256(commitment),
        }
    }

    /// The bytes the worker signs.
    pub fn payload(&self) -> Vec<u8> {
        (STATEMENT_DOMAIN, self).encode()
    }

    /// Signs the statement with the worker's key.
    pub fn sign(self, worker: &Keypair) -> SignedStatement {
        SignedStatement {
            signature: worker.sign(&self.payload()),
            statement: self,
        }
    }
}

/// A [`MaterialStatement`] with the worker's signature.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct SignedStatement {
    pub statement: MaterialStatement,
    pub signature: Signature,
}

impl SignedStatement {
    /// True when `worker` signed the statement.
    pub fn signed_by(&self, worker: &AccountId) -> bool {
        verify(&self.signature, &self.statement.payload(), worker)
    }
}

/// A checker's re-run of a receipt: what the worker said and committed, and what the
/// checker computed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Recomputation {
    /// The worker's signed statement of the material it handed over.
    pub statement: SignedStatement,
    /// The encoded commitment the worker handed over (hashes to the statement's).
    pub claimed: Vec<u8>,
    /// The encoded commitment the checker recomputed from the worker's inputs.
    pub recomputed: Vec<u8>,
}

/// The evidence of a `submit_spot_check` verdict.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum SpotCheckEvidence {
    /// No evidence: `NoAnswer` (an absence has none), or a `Match` that carries none.
    None,
    /// `Mismatch`: the worker's own statement contradicts its receipt (it handed over
    /// material that is not what the receipt commits to).
    Disowned(SignedStatement),
    /// `Mismatch` or `Match`: the checker's re-run, with the worker's statement.
    Recomputed(Recomputation),
}

/// What an event says of the evidence that decided a check (full evidence is in the
/// deciding extrinsics).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum EvidenceSummary {
    /// None given (`NoAnswer`).
    None,
    /// The worker's signed statement, which contradicts its receipt or commits to a
    /// malformed commitment.
    Statement(MaterialStatement),
    /// The recomputed commitments (their hashes) of the check's `Mismatch` verdicts (two
    /// of which agree within the tolerance), and how far the first is from the worker's
    /// committed one (largest position distance, in millionths; `u32::MAX`: not
    /// comparable).
    Recomputed {
        recomputed: Vec<Hash>,
        distance_ppm: u32,
    },
}

/// A relative distance in millionths, saturating (`u32::MAX` for infinite or NaN).
pub fn distance_ppm(distance: f32) -> u32 {
    if distance.is_finite() && distance >= 0.0 {
        (f64::from(distance) * 1e6)
            .round()
            .min(f64::from(u32::MAX - 1)) as u32
    } else {
        u32::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keypair_from_uri;

    #[test]
    fn statements_are_signed_by_the_worker_only() {
        let bob = keypair_from_uri("//Bob").unwrap();
        let eve = keypair_from_uri("//Eve").unwrap();
        let statement = MaterialStatement::of(Hash::repeat_byte(1), Hash::repeat_byte(2), b"c");
        let signed = statement.clone().sign(&bob);
        assert!(signed.signed_by(&bob.public().into()));
        assert!(!signed.signed_by(&eve.public().into()));
        let mut other = signed.clone();
        other.statement.receipt = Hash::repeat_byte(3);
        assert!(
            !other.signed_by(&bob.public().into()),
            "bound to the receipt"
        );
        // A statement signature is not a receipt signature over the same bytes.
        assert_ne!(statement.payload(), statement.encode());
    }

    #[test]
    fn distances_saturate() {
        assert_eq!(distance_ppm(0.131), 131_000);
        assert_eq!(distance_ppm(f32::INFINITY), u32::MAX);
        assert_eq!(distance_ppm(f32::NAN), u32::MAX);
        assert_eq!(distance_ppm(1e12), u32::MAX - 1);
    }
}
