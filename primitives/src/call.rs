//! Calls (what an extrinsic asks the runtime to do) and signed extrinsics (a call with
//! its signer, nonce and signature). The signature covers the chain's genesis id, so an
//! extrinsic signed for one chain is worthless on another.

use crate::crypto::{blake2_256, verify, AccountId, Hash, Keypair, Signature};
use crate::receipt::{LayerRange, Receipt};
use crate::training::{GradientReceipt, RoundResult, RoundVerification};
use crate::units::{Balance, Nonce};
use parity_scale_codec::{Decode, Encode};
use sp_core::Pair as _;

const EXTRINSIC_DOMAIN: &[u8] = b"neuroshard/extrinsic/v1";

/// Calls of the balances pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum BalancesCall {
    /// Move `amount` base units of free balance to `dest`.
    Transfer {
        dest: AccountId,
        #[codec(compact)]
        amount: Balance,
    },
}

/// Calls of the Proof-of-Neural-Work pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum PonwCall {
    /// Announce that the signer serves `shards` of `model` and may earn for them.
    RegisterWorker {
        model: Hash,
        shards: Vec<LayerRange>,
    },
    /// Stop serving; no further receipts or uptime for the signer.
    DeregisterWorker,
    /// A batch of inference receipts (each signed by worker and client).
    SubmitReceipts { receipts: Vec<Receipt> },
    /// The signer (a registered worker) is up during wall-clock `minute` and still holds
    /// the model: `chunk` is the model-file chunk the minute's challenge names for it, with
    /// its Merkle `proof` against the chain's model chunk root.
    Heartbeat {
        minute: u64,
        chunk: Vec<u8>,
        proof: Vec<Option<Hash>>,
    },
    /// Lock `amount` of free balance as escrow that pays for inference the signer asks
    /// for (receipts it counter-signs draw their fees from it).
    DepositEscrow {
        #[codec(compact)]
        amount: Balance,
    },
    /// Announce that the escrow will be withdrawn; it stays usable until the release
    /// delay has passed, so workers serving the signer are still paid.
    RequestEscrowRelease,
    /// Take back what is left of a released escrow.
    WithdrawEscrow,
    /// A validator's verdict on a receipt drawn for a spot check.
    SubmitSpotCheck {
        receipt: Hash,
        verdict: crate::event::SpotCheckVerdict,
    },
    /// A validator's capacity probes of `minute`: the workers assigned to it (see
    /// `ponw::prober_of`) that answered its seeded request (`answered`, each with the
    /// throughput it proved: layer-positions per second, the answer's time less the
    /// path's round trip) and those that refused, missed the deadline or answered wrong
    /// (`failed`). A worker's minute of uptime is credited once it is both probed and
    /// heartbeated, in proportion to the throughput proved (see `ponw::liveness`).
    ReportLiveness {
        minute: u64,
        answered: Vec<(AccountId, u64)>,
        failed: Vec<AccountId>,
    },
    /// Reserve `amount` more of the signer's free balance as its worker bond: a bigger
    /// bond answers for more unsettled work (see `ponw::settlement`) and is slashable.
    BondMore {
        #[codec(compact)]
        amount: Balance,
    },
}

/// Calls of the staking pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum StakingCall {
    /// Lock `amount` of free balance as bond.
    Bond {
        #[codec(compact)]
        amount: Balance,
    },
    /// Start unlocking `amount` of bond; it becomes free after the unbonding period.
    Unbond {
        #[codec(compact)]
        amount: Balance,
    },
    /// Move every unlocked unbonding chunk back to free balance.
    WithdrawUnbonded,
    /// Evidence that one author sealed two different blocks for the same slot; anyone
    /// may submit it, and the author's bond is slashed.
    ReportEquivocation {
        first: Box<crate::block::Header>,
        second: Box<crate::block::Header>,
    },
}

/// Calls of the training pallet (Proof of Training).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum TrainingCall {
    /// A shard holder's signed gradient receipt for the shard's current round.
    SubmitGradientReceipt { receipt: GradientReceipt },
    /// The signer (a holder with a receipt in the round) reports the round's robust
    /// aggregate: which pseudo-gradients were kept and the new adapter version. The round
    /// closes when a majority of the round's contributors report the same result.
    ReportRoundResult { result: RoundResult },
    /// The validator drawn to verify a closed round (any validator once the round's
    /// verification is overdue) submits its verdicts: the round's reward is paid to the
    /// accepted receipts it found `Improved`, contradicted workers are slashed, and the
    /// adapter version is adopted for serving when it says so.
    SubmitRoundVerification { verification: RoundVerification },
}

/// Any call, routed by pallet.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub enum Call {
    #[codec(index = 0)]
    Balances(BalancesCall),
    #[codec(index = 1)]
    Ponw(PonwCall),
    #[codec(index = 2)]
    Staking(StakingCall),
    #[codec(index = 3)]
    Training(TrainingCall),
}

impl Call {
    /// "pallet.call" name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Balances(BalancesCall::Transfer { .. }) => "balances.transfer",
            Call::Ponw(PonwCall::RegisterWorker { .. }) => "ponw.register_worker",
            Call::Ponw(PonwCall::DeregisterWorker) => "ponw.deregister_worker",
            Call::Ponw(PonwCall::SubmitReceipts { .. }) => "ponw.submit_receipts",
            Call::Ponw(PonwCall::Heartbeat { .. }) => "ponw.heartbeat",
            Call::Ponw(PonwCall::DepositEscrow { .. }) => "ponw.deposit_escrow",
            Call::Ponw(PonwCall::RequestEscrowRelease) => "ponw.request_escrow_release",
            Call::Ponw(PonwCall::WithdrawEscrow) => "ponw.withdraw_escrow",
            Call::Ponw(PonwCall::SubmitSpotCheck { .. }) => "ponw.submit_spot_check",
            Call::Ponw(PonwCall::ReportLiveness { .. }) => "ponw.report_liveness",
            Call::Ponw(PonwCall::BondMore { .. }) => "ponw.bond_more",
            Call::Staking(StakingCall::Bond { .. }) => "staking.bond",
            Call::Staking(StakingCall::Unbond { .. }) => "staking.unbond",
            Call::Staking(StakingCall::WithdrawUnbonded) => "staking.withdraw_unbonded",
            Call::Staking(StakingCall::ReportEquivocation { .. }) => "staking.report_equivocation",
            Call::Training(TrainingCall::SubmitGradientReceipt { .. }) => {
                "training.submit_gradient_receipt"
            }
            Call::Training(TrainingCall::ReportRoundResult { .. }) => {
                "training.report_round_result"
            }
            Call::Training(TrainingCall::SubmitRoundVerification { .. }) => {
                "training.submit_round_verification"
            }
        }
    }
}

/// A call signed by its sender.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct SignedExtrinsic {
    pub signer: AccountId,
    #[codec(compact)]
    pub nonce: Nonce,
    pub call: Call,
    pub signature: Signature,
}

impl SignedExtrinsic {
    /// The bytes the signer signs: domain, genesis id, signer, nonce and call.
    pub fn signing_payload(
        genesis: &Hash,
        signer: &AccountId,
        nonce: Nonce,
        call: &Call,
    ) -> Vec<u8> {
        (
            EXTRINSIC_DOMAIN,
            genesis,
            signer,
            parity_scale_codec::Compact(nonce),
            call,
        )
            .encode()
    }

    /// Builds and signs an extrinsic for the chain with genesis id `genesis`.
    pub fn sign(pair: &Keypair, genesis: &Hash, nonce: Nonce, call: Call) -> Self {
        let signer: AccountId = pair.public().into();
        let signature = pair.sign(&Self::signing_payload(genesis, &signer, nonce, &call));
        Self {
            signer,
            nonce,
            call,
            signature,
        }
    }

    /// True when the signature is the signer's over this call on chain `genesis`.
    pub fn signature_is_valid(&self, genesis: &Hash) -> bool {
        let payload = Self::signing_payload(genesis, &self.signer, self.nonce, &self.call);
        verify(&self.signature, &payload, &self.signer)
    }

    /// The extrinsic's hash (of its full encoding), used by the pool and RPC.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keypair_from_uri;
    use proptest::prelude::*;

    fn transfer(amount: Balance) -> Call {
        Call::Balances(BalancesCall::Transfer {
            dest: keypair_from_uri("//Bob").unwrap().public().into(),
            amount,
        })
    }

    #[test]
    fn signature_binds_chain_nonce_and_call() {
        let alice = keypair_from_uri("//Alice").unwrap();
        let genesis = blake2_256(b"dev");
        let xt = SignedExtrinsic::sign(&alice, &genesis, 0, transfer(5));
        assert!(xt.signature_is_valid(&genesis));
        assert!(!xt.signature_is_valid(&blake2_256(b"other chain")));
        let mut changed = xt.clone();
        changed.nonce = 1;
        assert!(!changed.signature_is_valid(&genesis));
        let mut changed = xt;
        changed.call = transfer(6);
        assert!(!changed.signature_is_valid(&genesis));
    }

    proptest! {
        #[test]
        fn extrinsic_codec_round_trips(nonce in any::<u64>(), amount in any::<u128>(), seed in any::<[u8; 32]>()) {
            let pair = Keypair::from_seed(&seed);
            let xt = SignedExtrinsic::sign(&pair, &Hash::zero(), nonce, transfer(amount));
            let bytes = xt.encode();
            prop_assert_eq!(SignedExtrinsic::decode(&mut &bytes[..]).unwrap(), xt);
        }

        #[test]
        fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedExtrinsic::decode(&mut &bytes[..]);
            let _ = crate::block::Block::decode(&mut &bytes[..]);
        }
    }
}
