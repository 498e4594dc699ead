//! A shard served by another node: [`RemoteShard`] is a [`ShardTransport`] that sends
//! the pipeline's [`InferenceCall`]s to the provider over the network handle, its
//! forwards batched with other sessions' in the shard's [`Outbox`].
//!
//! Receipts cross the network signed: the serving node's billing signs the receipt body
//! with its chain key, and the client's billing checks it (the worker account it
//! expected, the terms, the session, the commitment) before it counter-signs.

use crate::outbox::{Outbox, Outboxes};
use crate::protocol::{
    decode_reply, short_peer, BillingTerms, InferenceCall, InferenceReply, ShardReply,
    WorkerReceipt,
};
use neuroshard_inference::commitment::ActivationCommitment;
use neuroshard_inference::messages::{ShardRequest, ShardResponse, WorkRequest};
use neuroshard_inference::transport::ShardTransport;
use neuroshard_inference::InferenceError;
use neuroshard_network::{NetworkError, NetworkHandle, PeerId, Protocol};
use neuroshard_primitives::{AccountId, Hash, LayerRange, Receipt, SessionId};
use parity_scale_codec::Encode;
use std::sync::Arc;

/// A shard served by another node, reached through the network.
pub struct RemoteShard {
    network: NetworkHandle,
    runtime: tokio::runtime::Handle,
    peer: PeerId,
    /// The chain account the provider's records say signs its receipts.
    worker: AccountId,
    model: Hash,
    layers: LayerRange,
    /// Where this node's sessions' requests to this shard are batched.
    outbox: Arc<Outbox>,
}

impl RemoteShard {
    /// The shard `layers` of `model` at `peer`, its forwards batched in `outboxes`'
    /// outbox of it (shared by every route through it).
    pub fn new(
        network: NetworkHandle,
        runtime: tokio::runtime::Handle,
        outboxes: &Outboxes,
        peer: PeerId,
        worker: AccountId,
        model: Hash,
        layers: LayerRange,
    ) -> Self {
        Self {
            outbox: outboxes.get(peer, model, layers),
            network,
            runtime,
            peer,
            worker,
            model,
            layers,
        }
    }

    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The chain account the provider's records say signs its receipts.
    pub fn worker(&self) -> &AccountId {
        &self.worker
    }

    /// Asks the provider for its signed receipt for its work on `work.session` under the
    /// client's `terms`; [`crate::billing::check_worker_receipt`] checks it.
    pub fn worker_receipt(
        &self,
        work: &WorkRequest,
        terms: &BillingTerms,
    ) -> Result<WorkerReceipt, InferenceError> {
        let call = InferenceCall::Receipt {
            model: self.model,
            layers: self.layers,
            work: work.clone(),
            terms: terms.clone(),
        };
        let InferenceReply::Receipt {
            body,
            commitment,
            worker_signature,
        } = self.call(call)?
        else {
            return Err(self.fail("reply is not a receipt"));
        };
        let commitment = ActivationCommitment::decode(&commitment)
            .ok_or_else(|| self.fail("receipt commitment does not decode"))?;
        Ok(WorkerReceipt {
            body,
            commitment,
            worker_signature,
        })
    }

    /// Pays the provider: hands back `receipts` of its work, counter-signed (see
    /// [`crate::payments`]).
    pub fn pay(&self, receipts: Vec<Receipt>) -> Result<(), InferenceError> {
        let call = InferenceCall::Pay {
            model: self.model,
            layers: self.layers,
            receipts,
        };
        match self.call(call)? {
            InferenceReply::Done => Ok(()),
            _ => Err(self.fail("reply does not acknowledge the payment")),
        }
    }

    fn fail(&self, reason: impl Into<String>) -> InferenceError {
        InferenceError::Transport {
            shard: self.name(),
            reason: reason.into(),
        }
    }

    /// Sends `call` and decodes the reply; runs on a blocking thread (the pipeline's).
    /// A forward whose connection was lost under it ([`NetworkError::ConnectionLost`]:
    /// closed, its stream broken, or a relayed one gone silent) is sent once more: the
    /// provider may still be reachable another way (a provider behind NAT through its
    /// other relay), and a forward is safe to repeat (the provider truncates the session
    /// to the forward's start position first).
    fn call(&self, call: InferenceCall) -> Result<InferenceReply, InferenceError> {
        let repeatable = matches!(call, InferenceCall::Forward(_));
        let call = crate::protocol::ShardCall::Inference(call).encode();
        let send = || {
            futures::executor::block_on(self.network.request(
                self.peer,
                Protocol::Activations,
                call.clone(),
            ))
        };
        let mut result = send();
        if repeatable && matches!(result, Err(NetworkError::ConnectionLost { .. })) {
            tracing::warn!(
                provider = %self.name(),
                "connection to the provider lost mid-call; sending the forward again"
            );
            result = send();
        }
        let bytes = result.map_err(|e| self.fail(e.to_string()))?;
        match decode_reply(&self.network, self.peer, &bytes).map_err(|e| self.fail(e))? {
            ShardReply::Inference(reply) => Ok(reply),
            _ => Err(self.fail("reply is not an inference reply")),
        }
    }
}

impl ShardTransport for RemoteShard {
    fn name(&self) -> String {
        format!("{}:{}", short_peer(&self.peer), self.layers)
    }

    fn layers(&self) -> LayerRange {
        self.layers
    }

    fn model(&self) -> Hash {
        self.model
    }

    fn forward(&self, req: &ShardRequest) -> Result<ShardResponse, InferenceError> {
        let send = |requests| match self.call(InferenceCall::Forward(requests)) {
            Ok(InferenceReply::Forward(replies)) => Ok(replies
                .into_iter()
                .map(|r| r.map_err(|e| format!("peer says: {e}")))
                .collect()),
            Ok(_) => Err("reply is not a forward reply".to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.outbox.forward(req, send).map_err(|e| self.fail(e))
    }

    fn end_session(&self, session: &SessionId) {
        let call = crate::protocol::ShardCall::Inference(InferenceCall::EndSession {
            model: self.model,
            layers: self.layers,
            session: *session,
        });
        let (network, peer) = (self.network.clone(), self.peer);
        self.runtime.spawn(async move {
            let _ = network
                .request(peer, Protocol::Activations, call.encode())
                .await;
        });
    }
}
