//! Transaction validation for the pool: what a node checks before it keeps an extrinsic
//! and forwards it to its peers. Whatever the pool spends on a transaction that never
//! reaches a block is unpaid, so a transaction from the network gets only checks that
//! cost little, cheapest first (size, nonce, a payable fee, then the signature, then a
//! sample of the call's own signatures: [`Validation::Gossip`]); the call runs in full
//! only in a block, where its fee is paid whether it succeeds or not (see
//! `crate::dispatch`). This node's own users get a dry run as well
//! ([`Validation::DryRun`]), so that they learn why a call would fail before paying
//! for it.

use crate::error::{DispatchError, TransactionError};
use crate::{system, Runtime};
use neuroshard_balances as balances;
use neuroshard_ponw as ponw;
use neuroshard_primitives::{AccountId, Call, Hash, Nonce, PonwCall, SignedExtrinsic};
use neuroshard_support::{Overlay, ReadState, StateDb};
use parity_scale_codec::Encode;

/// How far a transaction is checked before it is pooled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Every check, and the call dry-run on the head state: for extrinsics this node's
    /// own users and services submit.
    DryRun,
    /// Cheap checks only, for extrinsics from peers: a receipt batch's signatures are
    /// sampled with `sample_seed` (the node's own secret randomness; see
    /// [`ponw::precheck_receipts`]) instead of checked in full. Free calls (heartbeats,
    /// liveness reports), which cannot pay for a failure, are still dry-run: they are
    /// cheap by construction.
    Gossip { sample_seed: [u8; 32] },
}

/// What the pool needs to know about a valid transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidTransaction {
    /// The transaction's nonce.
    pub nonce: Nonce,
    /// The sender's next nonce in the state it was validated against; `nonce` may be
    /// ahead of it (the transaction then waits for its predecessors).
    pub account_nonce: Nonce,
    /// Higher goes first among ready transactions.
    pub priority: u64,
}

impl Runtime {
    /// Validates a transaction against `state` (the state after the block whose hash is
    /// `head_hash`) for a block in `next_slot`, as far as `validation` says. A transaction with a future nonce (waiting for its
    /// predecessors) gets only the checks that don't depend on them. A peer's
    /// transaction is checked cheapest first (size, nonce, fee, then its signature); a
    /// local one signature first, so its sender hears the most telling reason.
    pub fn validate_transaction(
        &self,
        state: &StateDb,
        head_hash: &Hash,
        xt: &SignedExtrinsic,
        next_slot: u64,
        validation: Validation,
    ) -> Result<ValidTransaction, TransactionError> {
        let size = xt.encoded_size();
        let limit = system::params(state)?.max_extrinsic_bytes;
        if size > limit as usize {
            return Err(TransactionError::TooLarge { size, limit });
        }
        let number = system::number(state)? + 1;
        let signature_ok = || self.check_signature(state, number, head_hash, xt);
        if validation == Validation::DryRun {
            // This node's own users hear the most telling reason first.
            signature_ok()?;
        }
        let account_nonce = balances::nonce(state, &xt.signer).map_err(DispatchError::from)?;
        if xt.nonce < account_nonce {
            return Err(TransactionError::StaleNonce {
                expected: account_nonce,
                got: xt.nonce,
            });
        }
        if xt.nonce > account_nonce + system::MAX_FUTURE_NONCES {
            return Err(TransactionError::FutureNonce {
                expected: account_nonce,
                got: xt.nonce,
            });
        }
        let fee = self.fee_of(state, xt)?;
        balances::ensure_can_pay(state, &xt.signer, fee).map_err(TransactionError::CannotPayFee)?;
        if let Validation::Gossip { sample_seed } = validation {
            signature_ok()?;
            precheck_call(state, &xt.call, &sample_seed)?;
        }
        let dry_run = validation == Validation::DryRun || fee == 0;
        if dry_run && xt.nonce == account_nonce {
            self.dry_run(state, head_hash, xt, next_slot)?;
        }
        Ok(ValidTransaction {
            nonce: xt.nonce,
            account_nonce,
            // The tip buys priority (free calls pay none, so theirs counts for nothing).
            priority: if fee == 0 {
                0
            } else {
                u64::try_from(xt.tip).unwrap_or(u64::MAX)
            },
        })
    }

    /// Runs `xt` on `state` as the next block would; `Err` when it is invalid or its
    /// call fails.
    fn dry_run(
        &self,
        state: &StateDb,
        head_hash: &Hash,
        xt: &SignedExtrinsic,
        next_slot: u64,
    ) -> Result<(), TransactionError> {
        let p = system::params(state)?;
        let number = system::number(state)? + 1;
        let slot = next_slot.max(system::slot(state)? + 1);
        let mut ctx = system::context(&p, number, *head_hash, slot, AccountId::from([0; 32]));
        let mut overlay = Overlay::new(state);
        // No VRF output exists for a block not built yet; only the randomness a
        // transaction cannot read depends on it.
        self.initialize(&mut overlay, &mut ctx, &Hash::zero())
            .map_err(TransactionError::Call)?;
        // A call that would be included and fail is, for this node's users, refused
        // with the reason (nothing paid).
        self.apply_outcome(&mut overlay, &ctx, xt)?
            .map_err(TransactionError::Call)
    }
}

/// The cheap checks of a call's heavy parts (today: a receipt batch's signatures).
fn precheck_call(
    state: &impl ReadState,
    call: &Call,
    sample_seed: &[u8; 32],
) -> Result<(), TransactionError> {
    if let Call::Ponw(PonwCall::SubmitReceipts { receipts }) = call {
        ponw::precheck_receipts(state, receipts, sample_seed)
            .map_err(|e| TransactionError::Refuted(DispatchError::from(e)))?;
    }
    Ok(())
}
