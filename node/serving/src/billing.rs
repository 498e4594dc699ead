//! Billing: the one place where a shard's work becomes a chain receipt, and the only code
//! that signs or counter-signs one.
//!
//! The path is one-way. Inference knows nothing of the chain: a shard returns a
//! [`WorkRecord`] (layers, positions, commitments, adapter version). Here a worker turns
//! it into a [`ReceiptBody`] under the client's [`BillingTerms`] (who pays, in which
//! epoch) with [`receipt_body`] and signs it ([`sign_work`]); the client checks the
//! signed body against what it asked and what the pipeline saw the hop do
//! ([`check_worker_receipt`]) and counter-signs it ([`bill_session`]). The same steps run
//! for this node's own shards and for remote ones ([`Provider`]); a validator maps a
//! receipt back to the work to re-run with [`work_of`].

pub use crate::protocol::{BillingTerms, WorkerReceipt};
use crate::remote::RemoteShard;
use anyhow::{bail, Context};
use neuroshard_inference::pipeline::ServedHop;
use neuroshard_inference::transport::{InProcessTransport, ShardTransport};
use neuroshard_inference::{RecordedWork, WorkRecord, WorkRequest};
use neuroshard_primitives::{crypto, AccountId, Keypair, Receipt, ReceiptBody};
use sp_core::Pair as _;
use std::sync::Arc;

/// The chain receipt body for `work` done by `worker` under `terms`.
pub fn receipt_body(worker: AccountId, terms: &BillingTerms, work: &WorkRecord) -> ReceiptBody {
    ReceiptBody {
        worker,
        client: terms.client.clone(),
        model: work.model,
        layers: work.layers,
        session: work.session,
        epoch: terms.epoch,
        seq: work.seq,
        position_start: work.position_start,
        position_end: work.position_end,
        commitment: work.commitment,
        input_commitment: work.input_commitment,
        adapter: work.adapter,
    }
}

/// The work a receipt attests (what a spot check re-runs; its id is the key of the
/// worker's archived material). The inverse of [`receipt_body`].
pub fn work_of(body: &ReceiptBody) -> WorkRecord {
    WorkRecord {
        model: body.model,
        layers: body.layers,
        session: body.session,
        seq: body.seq,
        position_start: body.position_start,
        position_end: body.position_end,
        commitment: body.commitment,
        input_commitment: body.input_commitment,
        adapter: body.adapter,
    }
}

/// The worker's side: the receipt body for work a shard recorded (see
/// [`neuroshard_inference::Shard::record_work`]), billed under `terms` and signed with the
/// worker's `key`.
pub fn sign_work(key: &Keypair, terms: &BillingTerms, recorded: RecordedWork) -> WorkerReceipt {
    let body = receipt_body(key.public().into(), terms, &recorded.record);
    WorkerReceipt {
        worker_signature: body.sign_as_worker(key),
        commitment: recorded.commitment,
        body,
    }
}

/// The client's check of a worker's receipt for one hop: signed by the expected worker,
/// for the terms the client asked, for the session, model and layers it was served, for
/// exactly the positions accepted and inputs sent ([`ServedHop::check`]), carrying the
/// hash of the commitment that came with it.
pub fn check_worker_receipt(
    receipt: &WorkerReceipt,
    worker: &AccountId,
    terms: &BillingTerms,
    transport: &dyn ShardTransport,
    served: &ServedHop,
) -> anyhow::Result<()> {
    let body = &receipt.body;
    let asked = body.worker == *worker
        && body.client == terms.client
        && body.epoch == terms.epoch
        && body.model == transport.model()
        && body.layers == transport.layers()
        && body.commitment == receipt.commitment.hash();
    if !asked {
        bail!("{}: receipt does not match the work asked for", served.name);
    }
    served.check(&work_of(body))?;
    if !crypto::verify(
        &receipt.worker_signature,
        &body.worker_payload(),
        &body.worker,
    ) {
        bail!("{}: receipt's worker signature is invalid", served.name);
    }
    Ok(())
}

/// A provider a session can be routed through and billed with: one of this node's own
/// shards (its receipts signed with this node's key) or a shard on another node.
#[derive(Clone)]
pub enum Provider {
    Local(Arc<InProcessTransport>),
    Remote(Arc<RemoteShard>),
}

impl Provider {
    /// The provider as a pipeline transport.
    pub fn transport(&self) -> Arc<dyn ShardTransport> {
        match self {
            Provider::Local(t) => t.clone(),
            Provider::Remote(r) => r.clone(),
        }
    }

    /// The account whose signature the provider's receipts must carry.
    fn worker(&self, local_key: &Keypair) -> AccountId {
        match self {
            Provider::Local(_) => local_key.public().into(),
            Provider::Remote(r) => r.worker().clone(),
        }
    }

    /// The provider's worker-signed receipt for its work on `work.session`.
    fn worker_receipt(
        &self,
        local_key: &Keypair,
        work: &WorkRequest,
        terms: &BillingTerms,
    ) -> anyhow::Result<WorkerReceipt> {
        match self {
            Provider::Local(t) => Ok(sign_work(local_key, terms, t.record_work(work)?)),
            Provider::Remote(r) => Ok(r.worker_receipt(work, terms)?),
        }
    }
}

/// The client's side of a finished session: asks the provider that served each hop
/// (`served[i]` names an index into `hops[i]`) for its worker-signed receipt, checks it
/// and counter-signs it with `client_key` (the node's own shards sign as worker with
/// `node_key`; the two differ when an API key's account pays). Any hop whose receipt
/// fails its checks fails the whole bill.
pub fn bill_session(
    client_key: &Keypair,
    node_key: &Keypair,
    epoch: u32,
    served: &[ServedHop],
    hops: &[Vec<Provider>],
) -> anyhow::Result<Vec<Receipt>> {
    let terms = BillingTerms {
        client: client_key.public().into(),
        epoch,
    };
    served
        .iter()
        .zip(hops)
        .map(|(served, providers)| {
            let provider = providers
                .get(served.provider)
                .with_context(|| format!("{}: provider not in the route", served.name))?;
            let work = WorkRequest {
                session: served.session,
                until: served.until,
            };
            let receipt = provider.worker_receipt(node_key, &work, &terms)?;
            let worker = provider.worker(node_key);
            check_worker_receipt(&receipt, &worker, &terms, &*provider.transport(), served)?;
            Ok(Receipt {
                client_signature: receipt.body.sign_as_client(client_key),
                worker_signature: receipt.worker_signature,
                body: receipt.body,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
