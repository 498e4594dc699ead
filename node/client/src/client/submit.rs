//! Transactions into the pool: the node's own services sign and submit through
//! [`Client::sign_and_submit`] (one at a time, so no two share a nonce), RPC users through
//! [`Client::submit`] (dry-run checked), peers' gossip through
//! [`Client::submit_from_network`] (cheap checks only; the call runs in full in a block,
//! where its sender pays whether it succeeds or not). Accepted local submissions are handed
//! to the network for gossip.

use super::{hex_hash, Client, SubmitError};
use crate::pool::Validity;
use neuroshard_primitives::{AccountId, Hash, SignedExtrinsic};
use neuroshard_runtime::Validation;
use tokio::sync::broadcast;
use tracing::debug;

impl Client {
    /// Signs `call` with `key` at the signer's next nonce (counting its pooled
    /// transactions) and submits it. One at a time, so the node's own services (miner,
    /// billing, spot checker) never sign two transactions with one nonce.
    pub fn sign_and_submit(
        &self,
        key: &neuroshard_primitives::Keypair,
        call: neuroshard_primitives::Call,
    ) -> anyhow::Result<Hash> {
        self.sign_and_submit_as(key, call, Validation::DryRun)
    }

    /// [`Self::sign_and_submit`] with the checks `validation` says.
    pub(crate) fn sign_and_submit_as(
        &self,
        key: &neuroshard_primitives::Keypair,
        call: neuroshard_primitives::Call,
        validation: Validation,
    ) -> anyhow::Result<Hash> {
        use sp_core::Pair as _;
        let _one_at_a_time = self.own_submissions.lock();
        let signer: AccountId = key.public().into();
        let nonce = self.next_nonce(&signer)?;
        let xt = SignedExtrinsic::sign(key, &self.genesis_hash, nonce, call);
        Ok(self.submit_as(xt, validation)?)
    }

    /// Validates `xt` (from this node's RPC or its own services) against the head state,
    /// adds it to the pool and hands it to the network for gossip.
    pub fn submit(&self, xt: SignedExtrinsic) -> Result<Hash, SubmitError> {
        self.submit_as(xt, Validation::DryRun)
    }

    /// [`Self::submit`] with the checks `validation` says.
    fn submit_as(&self, xt: SignedExtrinsic, validation: Validation) -> Result<Hash, SubmitError> {
        let hash = self.pool_validated(xt.clone(), validation)?;
        #[cfg(feature = "fault-injection")]
        if let Some(omit) = self.config.fault_omit_receipts {
            if omit.keeps_from_gossip(&xt) {
                tracing::info!("fault injection: receipt batch kept from gossip");
                return Ok(hash);
            }
        }
        // Nobody listening (no network) is fine.
        let _ = self.local_extrinsics.send(xt);
        Ok(hash)
    }

    /// Extrinsics accepted by [`Self::submit`], for the network to gossip.
    pub fn subscribe_local_extrinsics(&self) -> broadcast::Receiver<SignedExtrinsic> {
        self.local_extrinsics.subscribe()
    }

    /// Validates `xt` received from a peer with the cheap checks only (the call runs in
    /// full in a block, where its sender pays for it whether it succeeds or not) and
    /// adds it to the pool (the network propagates it itself once accepted).
    pub fn submit_from_network(&self, xt: SignedExtrinsic) -> Result<Hash, SubmitError> {
        let sample_seed = rand::random();
        self.pool_validated(xt, Validation::Gossip { sample_seed })
    }

    /// Validates `xt` as `validation` says and adds it to the pool.
    fn pool_validated(
        &self,
        xt: SignedExtrinsic,
        validation: Validation,
    ) -> Result<Hash, SubmitError> {
        let next_slot = self.current_slot().unwrap_or(0) + 1;
        let (validity, best) = {
            let tip = self.tip.read();
            let validity = self.runtime.validate_transaction(
                &tip.state,
                &tip.head.hash(),
                &xt,
                next_slot,
                validation,
            )?;
            (validity, tip.head.number)
        };
        let hash = self.pool.lock().insert(
            xt,
            Validity {
                nonce: validity.nonce,
                priority: validity.priority,
            },
            best,
        )?;
        debug!(hash = %hex_hash(&hash), "extrinsic added to the pool");
        Ok(hash)
    }

    /// Pooled extrinsics in arrival order.
    pub fn pending(&self) -> Vec<SignedExtrinsic> {
        self.pool.lock().all()
    }
}
