//! Applying one signed extrinsic, as Substrate does: the validity checks (size,
//! signature, nonce, a payable fee) decide whether it can be in a block at all; once it
//! is, its fee is burned and its nonce used before the call runs, and a call that then
//! fails is rolled back alone, leaving an `ExtrinsicFailed` event that says why. So
//! whoever makes a block's validators run a call pays for it, whether it succeeds or
//! not. Heartbeats, liveness reports and the capacity calls are free; a free call that
//! fails is invalid (not included), so nothing free can fill blocks.

use crate::error::{DispatchError, TransactionError};
use crate::{system, Runtime};
use neuroshard_balances::{self as balances, Existence};
use neuroshard_ponw as ponw;
use neuroshard_primitives::{
    AccountId, Balance, BalancesCall, BlockNumber, Call, DispatchInfo, Era, Event, Hash, Nonce,
    PonwCall, SignedExtrinsic, StakingCall, TrainingCall,
};
use neuroshard_staking as staking;
use neuroshard_support::{BlockContext, Overlay, ReadState};
use neuroshard_training_pallet as training;
use serde::Serialize;

/// An account as wallets see it (base units).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccountInfo {
    pub free: Balance,
    pub reserved: Balance,
    pub bonded: Balance,
    pub nonce: Nonce,
    /// Part of `reserved` held as the worker bond (zero when not a worker).
    pub worker_bond: Balance,
    /// Total ever slashed from the worker bond by failed spot checks.
    pub slashed: Balance,
    /// Part of `reserved` still held from a deregistered worker's bond until its
    /// unsettled work is decided.
    pub retired_bond: Balance,
    /// What the worker's unsettled receipts will pay it (fees minus burn) when their
    /// check windows close; forfeited by a failed check.
    pub held_earnings: Balance,
    /// What the worker owes of hidden checks (`NoAnswer`), paid by its next settling
    /// receipts, or by its bond if it leaves owing.
    pub owed: Balance,
    /// The bond its unsettled receipts need (`2 x` their fees); new receipts are
    /// refused beyond `worker_bond`.
    pub exposure: Balance,
}

impl Runtime {
    /// The account record of `who`.
    pub fn account(
        &self,
        state: &impl ReadState,
        who: &AccountId,
    ) -> Result<AccountInfo, DispatchError> {
        let data = balances::account(state, who)?;
        let holding = ponw::settlement::holding(state, who)?;
        let owed = ponw::owed::owed(state, who)?;
        Ok(AccountInfo {
            free: data.free,
            reserved: data.reserved,
            bonded: data.bonded,
            nonce: data.nonce,
            worker_bond: ponw::worker(state, who)?.map_or(0, |w| w.bond),
            slashed: ponw::spot_checks::slashed(state, who)?,
            retired_bond: ponw::retired_bond(state, who)?,
            held_earnings: holding.earnings,
            owed,
            exposure: ponw::settlement::exposure_of(holding.fees),
        })
    }

    /// Checks that don't depend on the nonce being current: size and signature, for
    /// inclusion in the block `ctx` describes.
    pub(crate) fn check_envelope(
        &self,
        state: &impl ReadState,
        ctx: &BlockContext,
        xt: &SignedExtrinsic,
        encoded_len: usize,
    ) -> Result<(), TransactionError> {
        let limit = system::params(state)?.max_extrinsic_bytes;
        if encoded_len > limit as usize {
            return Err(TransactionError::TooLarge {
                size: encoded_len,
                limit,
            });
        }
        self.check_signature(state, ctx.number, &ctx.parent_hash, xt)
    }

    /// The signed extensions' checks of `xt` in block `number` (whose parent's hash is
    /// `parent_hash`): a non-zero sender, and a signature over this chain's genesis, the
    /// runtime's versions and the hash of the era's birth block (`CheckMortality`: a
    /// mortal extrinsic whose birth block is no longer kept has expired).
    pub(crate) fn check_signature(
        &self,
        state: &impl ReadState,
        number: BlockNumber,
        parent_hash: &Hash,
        xt: &SignedExtrinsic,
    ) -> Result<(), TransactionError> {
        if xt.signer == AccountId::from([0; 32]) {
            return Err(TransactionError::ZeroSender);
        }
        let birth_hash = match xt.era {
            Era::Immortal => self.genesis_hash,
            Era::Mortal(..) => {
                let birth = xt.era.birth(number);
                let known = if birth + 1 == number {
                    Some(*parent_hash)
                } else if birth < number {
                    system::block_hash(state, birth)?
                } else {
                    None
                };
                known.ok_or(TransactionError::AncientBirthBlock { birth })?
            }
        };
        if !xt.signature_is_valid(&self.genesis_hash, &birth_hash) {
            return Err(TransactionError::BadSignature);
        }
        Ok(())
    }

    /// The fee `xt` pays, tip included (see [`crate::payment`]).
    pub fn fee_of(
        &self,
        state: &impl ReadState,
        xt: &SignedExtrinsic,
    ) -> Result<Balance, TransactionError> {
        Ok(crate::payment::fee(state, xt)?)
    }

    /// Applies `xt`, whose signature [`Runtime::check_envelope`] has checked. `Err`: the
    /// extrinsic is invalid and changes nothing. `Ok`: it is in the block, its fee paid
    /// and nonce used; its call's effects are kept, with an [`Event::ExtrinsicSuccess`],
    /// when it succeeded and rolled back, with an [`Event::ExtrinsicFailed`], when it
    /// failed.
    pub(crate) fn apply_checked(
        &self,
        overlay: &mut Overlay<'_>,
        ctx: &BlockContext,
        xt: &SignedExtrinsic,
    ) -> Result<(), TransactionError> {
        self.apply_outcome(overlay, ctx, xt).map(|_| ())
    }

    /// [`Runtime::apply_checked`], also returning how the call went: `Ok(Err(e))` when
    /// the extrinsic is in the block and its call failed with `e`.
    pub(crate) fn apply_outcome(
        &self,
        overlay: &mut Overlay<'_>,
        ctx: &BlockContext,
        xt: &SignedExtrinsic,
    ) -> Result<Result<(), DispatchError>, TransactionError> {
        overlay.transactional(|o| {
            check_nonce(o, xt)?;
            let fee = self.fee_of(o, xt)?;
            if fee == 0 {
                // Free calls are all or nothing.
                balances::increment_nonce(o, &xt.signer).map_err(DispatchError::from)?;
                dispatch(o, ctx, &xt.signer, &xt.call)?;
                o.deposit_event(success(xt, 0));
                return Ok(Ok(()));
            }
            balances::charge_fee(o, &xt.signer, fee).map_err(TransactionError::CannotPayFee)?;
            balances::increment_nonce(o, &xt.signer).map_err(DispatchError::from)?;
            match o.transactional(|o| dispatch(o, ctx, &xt.signer, &xt.call)) {
                Ok(()) => {
                    o.deposit_event(success(xt, fee));
                    Ok(Ok(()))
                }
                // The state itself is unreadable: nothing to charge for.
                Err(DispatchError::Storage(e)) => Err(TransactionError::Storage(e)),
                Err(error) => {
                    o.deposit_event(Event::ExtrinsicFailed {
                        dispatch_error: error.to_substrate(),
                        dispatch_info: DispatchInfo::normal(fee),
                        extrinsic: xt.hash(),
                        who: xt.signer.clone(),
                        fee,
                        error: error.to_string(),
                    });
                    Ok(Err(error))
                }
            }
        })
    }
}

/// The event of `xt`'s successful call, after the call's own events.
fn success(xt: &SignedExtrinsic, fee: Balance) -> Event {
    Event::ExtrinsicSuccess {
        dispatch_info: DispatchInfo::normal(fee),
        extrinsic: xt.hash(),
        who: xt.signer.clone(),
        fee,
    }
}

/// `xt`'s nonce must be its signer's next one.
fn check_nonce(state: &impl ReadState, xt: &SignedExtrinsic) -> Result<(), TransactionError> {
    let expected = balances::nonce(state, &xt.signer).map_err(DispatchError::from)?;
    match xt.nonce.cmp(&expected) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(TransactionError::StaleNonce {
            expected,
            got: xt.nonce,
        }),
        std::cmp::Ordering::Greater => Err(TransactionError::FutureNonce {
            expected,
            got: xt.nonce,
        }),
    }
}

/// Routes a call to its pallet.
fn dispatch(
    o: &mut Overlay<'_>,
    ctx: &BlockContext,
    who: &AccountId,
    call: &Call,
) -> Result<(), DispatchError> {
    match call {
        Call::Balances(BalancesCall::transfer_allow_death { dest, value }) => {
            balances::transfer_with(o, who, dest, *value, Existence::AllowDeath)?
        }
        Call::Balances(BalancesCall::transfer_keep_alive { dest, value }) => {
            balances::transfer_with(o, who, dest, *value, Existence::KeepAlive)?
        }
        Call::Staking(StakingCall::Bond { amount }) => staking::bond(o, who, *amount)?,
        Call::Staking(StakingCall::Unbond { amount }) => staking::unbond(o, ctx, who, *amount)?,
        Call::Staking(StakingCall::WithdrawUnbonded) => staking::withdraw_unbonded(o, ctx, who)?,
        Call::Staking(StakingCall::ReportEquivocation { first, second }) => {
            staking::report_equivocation(o, first, second)?
        }
        Call::Ponw(PonwCall::RegisterWorker { model, shards }) => {
            ponw::register_worker(o, ctx.number, who, *model, shards.clone())?
        }
        Call::Ponw(PonwCall::DeregisterWorker) => ponw::deregister_worker(o, who)?,
        Call::Ponw(PonwCall::BondMore { amount }) => ponw::bond_more(o, who, *amount)?,
        Call::Ponw(PonwCall::SubmitReceipts { receipts }) => {
            ponw::submit_receipts(o, ctx, receipts)?
        }
        Call::Ponw(PonwCall::Heartbeat {
            minute,
            chunk,
            proof,
        }) => ponw::heartbeat(o, ctx, who, *minute, chunk, proof)?,
        Call::Ponw(PonwCall::DepositEscrow { amount }) => ponw::escrow::deposit(o, who, *amount)?,
        Call::Ponw(PonwCall::RequestEscrowRelease) => ponw::escrow::request_release(o, ctx, who)?,
        Call::Ponw(PonwCall::WithdrawEscrow) => ponw::escrow::withdraw(o, ctx, who)?,
        Call::Ponw(PonwCall::SubmitSpotCheck {
            receipt,
            verdict,
            evidence,
        }) => {
            let validators = Runtime::validator_bonds(&*o)?;
            ponw::submit_verdict(o, ctx.number, &validators, who, receipt, *verdict, evidence)?
        }
        Call::Ponw(PonwCall::ReportLiveness {
            minute,
            answered,
            failed,
        }) => {
            let validators = staking::validators(o)?;
            ponw::report_liveness(o, ctx, who, &validators, *minute, answered, failed)?
        }
        Call::Ponw(PonwCall::ClaimCapacity { minute, jobs, root }) => {
            let claim = ponw::capacity::CapacityClaim {
                minute: *minute,
                jobs: *jobs,
                root: *root,
            };
            ponw::capacity::claim_capacity(o, ctx, who, &claim).map_err(ponw::Error::from)?
        }
        Call::Ponw(PonwCall::OpenCapacity { minute, leaves }) => {
            ponw::capacity_audit::open_capacity(o, ctx, who, *minute, leaves)
                .map_err(ponw::Error::from)?
        }
        Call::Ponw(PonwCall::CapacityVerdict {
            worker,
            minute,
            recomputed,
        }) => {
            let validators = Runtime::validator_bonds(&*o)?;
            let recomputed = recomputed.clone();
            ponw::capacity_audit::capacity_verdict(
                o,
                ctx,
                who,
                &validators,
                worker,
                *minute,
                recomputed,
            )
            .map_err(ponw::Error::from)?
        }
        Call::Training(TrainingCall::SubmitGradientReceipt { receipt }) => {
            training::submit_gradient_receipt(o, ctx.number, receipt)?
        }
        Call::Training(TrainingCall::ReportRoundResult { result }) => {
            let validators = Runtime::validator_bonds(&*o)?;
            let verifiers = training::Verifiers {
                validators: &validators,
                randomness: ctx.randomness,
            };
            training::report_round_result(o, ctx.number, who, result, &verifiers)?
        }
        Call::Training(TrainingCall::SubmitRoundVerification { verification }) => {
            let validators = staking::validators(o)?;
            training::submit_round_verification(o, ctx.number, &validators, who, verification)?
        }
    }
    Ok(())
}
