//! Proof of Training wire types: the gradient receipt a shard holder signs after a DiLoCo
//! inner loop ("worker X trained the adapter of layers [a, b) of model M in round R,
//! starting from adapter version V; its pseudo-gradient hashes to G; its local loss went
//! from L0 to L1"), and the round result the holders report once they have aggregated
//! the round's pseudo-gradients with a Byzantine-robust rule (which pseudo-gradients the
//! rule kept, and the hash of the resulting adapter version).

use crate::crypto::{blake2_256, verify, AccountId, Hash, Keypair, Signature};
use crate::receipt::LayerRange;
use parity_scale_codec::{Decode, Encode};
use sp_core::Pair as _;

/// Domain separator of gradient receipt signatures (never valid as another signature).
const GRADIENT_DOMAIN: &[u8] = b"neuroshard/gradient-receipt/v1";

/// Most pseudo-gradient hashes one round result may list as accepted.
pub const MAX_ACCEPTED_PER_ROUND: usize = 256;

/// Fixed-point scale of losses on chain (micro-nats).
pub const LOSS_SCALE: f32 = 1e6;

/// A loss in micro-nats, saturating (negative and NaN become 0).
pub fn loss_to_fixed(loss: f32) -> u32 {
    if loss.is_nan() || loss <= 0.0 {
        return 0;
    }
    let scaled = (f64::from(loss) * f64::from(LOSS_SCALE)).round();
    if scaled >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        scaled as u32
    }
}

/// A fixed-point loss back as nats.
pub fn fixed_to_loss(fixed: u32) -> f32 {
    (f64::from(fixed) / f64::from(LOSS_SCALE)) as f32
}

/// What a gradient receipt attests; the worker signs these bytes plus a domain tag.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct GradientReceiptBody {
    /// The shard holder that trained (and is paid when its contribution is accepted).
    pub worker: AccountId,
    /// Hash of the model file.
    pub model: Hash,
    /// The shard whose adapter was trained.
    pub layers: LayerRange,
    /// Training round of this shard.
    pub round: u32,
    /// The adapter version the inner loop started from.
    pub base_adapter: Hash,
    /// blake2-256 of the encoded pseudo-gradient the worker shared.
    pub pseudo_gradient: Hash,
    /// Size of the encoded pseudo-gradient in bytes.
    pub payload_bytes: u32,
    /// Local loss before and after the inner loop, micro-nats ([`loss_to_fixed`]).
    pub loss_before: u32,
    pub loss_after: u32,
}

impl GradientReceiptBody {
    /// Bytes the worker signs.
    pub fn payload(&self) -> Vec<u8> {
        (GRADIENT_DOMAIN, self).encode()
    }

    /// The receipt's id (hash of the body).
    pub fn id(&self) -> Hash {
        blake2_256(&self.encode())
    }
}

/// A gradient receipt signed by its worker.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct GradientReceipt {
    pub body: GradientReceiptBody,
    pub signature: Signature,
}

impl GradientReceipt {
    pub fn sign(body: GradientReceiptBody, worker: &Keypair) -> Self {
        Self {
            signature: worker.sign(&body.payload()),
            body,
        }
    }

    /// True when the worker named in the body signed it.
    pub fn signature_is_valid(&self) -> bool {
        verify(&self.signature, &self.body.payload(), &self.body.worker)
    }

    pub fn id(&self) -> Hash {
        self.body.id()
    }
}

/// The outcome of one round's aggregation, as every honest holder computes it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct RoundResult {
    pub model: Hash,
    pub layers: LayerRange,
    pub round: u32,
    /// Pseudo-gradient hashes the robust rule kept, sorted.
    pub accepted: Vec<Hash>,
    /// Hash of the adapter version the outer step produced.
    pub adapter: Hash,
}

impl RoundResult {
    /// Identifies the result (holders agree when their results hash the same).
    pub fn id(&self) -> Hash {
        blake2_256(&self.encode())
    }
}

/// A validator's verdict on one gradient receipt of a closed round, from replaying the
/// worker's loss on its assigned data before and after applying its pseudo-gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum ContributionOutcome {
    /// The pseudo-gradient lowered the loss and the claimed losses match the replay.
    Improved,
    /// It did not lower the loss (earns nothing).
    NoImprovement,
    /// A near-copy of a pseudo-gradient recorded earlier in the round (earns nothing).
    Copied,
    /// No peer served the payload its receipt commits to (earns nothing).
    Unavailable,
    /// The worker's claimed losses are contradicted by the replay (slashed).
    Contradicted,
}

impl ContributionOutcome {
    /// Stable name for RPC and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Improved => "Improved",
            Self::NoImprovement => "NoImprovement",
            Self::Copied => "Copied",
            Self::Unavailable => "Unavailable",
            Self::Contradicted => "Contradicted",
        }
    }
}

/// A validator's verdict on the adapter version a closed round recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum AdapterOutcome {
    /// Its snapshot is available, hashes to the recorded version and does not raise the
    /// held-out loss: serving nodes adopt it.
    Adopted,
    /// No peer served a snapshot hashing to the recorded version.
    Unavailable,
    /// It raises the held-out loss (poisoned): not adopted.
    Worse,
}

impl AdapterOutcome {
    /// Stable name for RPC and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Adopted => "Adopted",
            Self::Unavailable => "Unavailable",
            Self::Worse => "Worse",
        }
    }
}

/// The verdict on one receipt, with the losses the validator measured (micro-nats).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ContributionCheck {
    pub worker: AccountId,
    pub outcome: ContributionOutcome,
    pub loss_before: u32,
    pub loss_after: u32,
}

/// A validator's verification of a closed round: one check per recorded receipt (in
/// the chain's order) and the verdict on its adapter, with the held-out losses of the
/// round's base version and of the new one (micro-nats).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct RoundVerification {
    pub model: Hash,
    pub layers: LayerRange,
    pub round: u32,
    pub checks: Vec<ContributionCheck>,
    pub adapter: AdapterOutcome,
    pub held_out_before: u32,
    pub held_out_after: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keypair_from_uri;
    use proptest::prelude::*;

    fn body(worker: &Keypair) -> GradientReceiptBody {
        GradientReceiptBody {
            worker: worker.public().into(),
            model: blake2_256(b"model"),
            layers: LayerRange::new(0, 10).unwrap(),
            round: 3,
            base_adapter: blake2_256(b"v2"),
            pseudo_gradient: blake2_256(b"delta"),
            payload_bytes: 1024,
            loss_before: loss_to_fixed(3.5),
            loss_after: loss_to_fixed(3.25),
        }
    }

    #[test]
    fn signature_binds_every_field_and_the_worker() {
        let bob = keypair_from_uri("//Bob").unwrap();
        let receipt = GradientReceipt::sign(body(&bob), &bob);
        assert!(receipt.signature_is_valid());
        let mut changed = receipt.clone();
        changed.body.round = 4;
        assert!(!changed.signature_is_valid());
        let mut changed = receipt.clone();
        changed.body.loss_after = 0;
        assert!(!changed.signature_is_valid());
        // Signed by someone else than the named worker.
        let eve = keypair_from_uri("//Eve").unwrap();
        let forged = GradientReceipt::sign(body(&bob), &eve);
        assert!(!forged.signature_is_valid());
        // An extrinsic-style signature over the bare body is not a receipt signature.
        let bare = GradientReceipt {
            signature: bob.sign(&receipt.body.encode()),
            body: receipt.body,
        };
        assert!(!bare.signature_is_valid());
    }

    #[test]
    fn losses_round_trip_in_fixed_point() {
        assert_eq!(loss_to_fixed(f32::NAN), 0);
        assert_eq!(loss_to_fixed(-1.0), 0);
        assert_eq!(loss_to_fixed(1e12), u32::MAX);
        assert!((fixed_to_loss(loss_to_fixed(2.345_678)) - 2.345_678).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn receipt_codec_round_trips(round in any::<u32>(), bytes in any::<u32>(), seed in any::<[u8; 32]>()) {
            let pair = Keypair::from_seed(&seed);
            let mut b = body(&pair);
            b.round = round;
            b.payload_bytes = bytes;
            let r = GradientReceipt::sign(b, &pair);
            let enc = r.encode();
            prop_assert_eq!(GradientReceipt::decode(&mut &enc[..]).unwrap(), r);
        }

        #[test]
        fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = GradientReceipt::decode(&mut &bytes[..]);
            let _ = RoundResult::decode(&mut &bytes[..]);
        }
    }
}
