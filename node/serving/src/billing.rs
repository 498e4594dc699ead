//! Billing: the one place where a shard's work becomes a chain receipt, and the only code
//! that signs or counter-signs one.
//!
//! The path is one-way. Inference knows nothing of the chain: a shard returns a
//! [`WorkRecord`] (layers, positions, commitments, adapter version). Here a worker turns
//! it into a [`ReceiptBody`] under the client's [`BillingTerms`] (who pays, in which
//! epoch) with [`receipt_body`] and signs it ([`sign_work`]); the client checks the
//! signed body against what it asked and what the pipeline saw the hop do
//! ([`check_worker_receipt`]) and counter-signs it ([`SessionBill`], every
//! [`PAYMENT_INCREMENT`] positions while the session runs). The same steps run
//! for this node's own shards and for remote ones ([`Provider`]); a validator maps a
//! receipt back to the work to re-run with [`work_of`].

pub use crate::protocol::{BillingTerms, WorkerReceipt, PAYMENT_INCREMENT};
use crate::remote::RemoteShard;
use anyhow::{bail, Context};
use neuroshard_inference::pipeline::ServedHop;
use neuroshard_inference::transport::{InProcessTransport, ScopedTransport, ShardTransport};
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

    /// The provider as a pipeline transport for a generation paid by `scope`: this node's
    /// shards reuse that client's cached prompt prefixes only (see
    /// `neuroshard_inference::prefix_cache`); peers' shards cache nothing for it.
    pub fn scoped_transport(&self, scope: [u8; 32]) -> Arc<dyn ShardTransport> {
        match self {
            Provider::Local(t) => Arc::new(ScopedTransport::new(t.clone(), scope)),
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

    /// Hands `receipts` of the provider's work back counter-signed (a remote provider
    /// serves a session only as far as it is paid; this node's own shards need no
    /// payment).
    fn pay(&self, receipts: Vec<Receipt>) -> anyhow::Result<()> {
        match self {
            Provider::Local(_) => Ok(()),
            Provider::Remote(r) => Ok(r.pay(receipts)?),
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

/// The client's side of a session as it runs: a remote provider's work is billed (its
/// receipt signed by the worker, checked, counter-signed) and paid (the receipt handed
/// back, [`crate::payments`]) whenever [`PAYMENT_INCREMENT`] accepted positions are due
/// on it, and every hop's once more when the session ends, so no provider serves more
/// than one increment on credit. The receipts go on chain when the session ends
/// ([`SessionBill::into_receipts`]). Receipts are signed with `client_key` (this node's
/// own shards sign as worker with `node_key`; the two differ when an API key's account
/// pays). A hop whose receipt fails its checks fails the bill.
pub struct SessionBill<'a> {
    client_key: &'a Keypair,
    node_key: &'a Keypair,
    hops: &'a [Vec<Provider>],
    /// Per hop: the provider billed last and the position its bill ended at.
    billed: Vec<Option<(usize, u32)>>,
    /// Whether receipts are handed back to the providers (always, but for the
    /// `never_pay` fault of test builds).
    pays: bool,
    receipts: Vec<Receipt>,
}

impl<'a> SessionBill<'a> {
    /// The bill of a session routed through `hops`, paying its providers when `pays`.
    pub fn new(
        client_key: &'a Keypair,
        node_key: &'a Keypair,
        hops: &'a [Vec<Provider>],
        pays: bool,
    ) -> Self {
        Self {
            client_key,
            node_key,
            hops,
            billed: vec![None; hops.len()],
            pays,
            receipts: Vec::new(),
        }
    }

    /// Whether a payment is due before the next round, with `accepted` positions
    /// accepted and `providers[i]` serving hop `i` now: [`PAYMENT_INCREMENT`] or more
    /// positions unpaid at some remote provider (all of them, at one that took over a
    /// hop). This node's own shards are billed once, at the end.
    pub fn due(&self, providers: &[usize], accepted: u32) -> bool {
        (0..providers.len()).any(|hop| self.hop_due(hop, providers[hop], accepted))
    }

    fn hop_due(&self, hop: usize, provider: usize, accepted: u32) -> bool {
        let remote = self.hops.get(hop).and_then(|p| p.get(provider));
        matches!(remote, Some(Provider::Remote(_)))
            && accepted
                >= self
                    .billed_until(hop, provider)
                    .saturating_add(PAYMENT_INCREMENT)
    }

    /// Where the bill of `provider`'s work on `hop` ended (0: never billed).
    fn billed_until(&self, hop: usize, provider: usize) -> u32 {
        match self.billed.get(hop).copied().flatten() {
            Some((billed, end)) if billed == provider => end,
            _ => 0,
        }
    }

    /// Bills and pays, in `epoch`, the work of every hop on which a payment is due
    /// ([`Self::due`]), up to its `served[i].until`.
    pub fn pay_due(&mut self, epoch: u32, served: &[ServedHop]) -> anyhow::Result<()> {
        for (hop, s) in served.iter().enumerate() {
            if self.hop_due(hop, s.provider, s.until) {
                self.bill_hop(hop, s, epoch)?;
            }
        }
        Ok(())
    }

    /// Bills and pays, in `epoch`, every hop's work up to its `served[i].until` (the
    /// end of the session). A hop whose provider has nothing new is skipped.
    pub fn pay_all(&mut self, epoch: u32, served: &[ServedHop]) -> anyhow::Result<()> {
        for (hop, s) in served.iter().enumerate() {
            if self.billed_until(hop, s.provider) < s.until {
                self.bill_hop(hop, s, epoch)?;
            }
        }
        Ok(())
    }

    /// Bills `served`, the work of hop `hop`, from where its provider's last bill ended.
    fn bill_hop(&mut self, hop: usize, served: &ServedHop, epoch: u32) -> anyhow::Result<()> {
        let terms = BillingTerms {
            client: self.client_key.public().into(),
            epoch,
        };
        let start = self.billed_until(hop, served.provider);
        let provider = self
            .hops
            .get(hop)
            .and_then(|p| p.get(served.provider))
            .with_context(|| format!("{}: provider not in the route", served.name))?;
        let work = WorkRequest {
            session: served.session,
            until: served.until,
        };
        let receipt = provider.worker_receipt(self.node_key, &work, &terms)?;
        let worker = provider.worker(self.node_key);
        check_worker_receipt(&receipt, &worker, &terms, &*provider.transport(), served)?;
        if receipt.body.position_start != start {
            bail!(
                "{}: receipt bills positions {}.., the unbilled ones start at {start}",
                served.name,
                receipt.body.position_start
            );
        }
        let receipt = Receipt {
            client_signature: receipt.body.sign_as_client(self.client_key),
            worker_signature: receipt.worker_signature,
            body: receipt.body,
        };
        if self.pays {
            provider.pay(vec![receipt.clone()])?;
        }
        self.billed[hop] = Some((served.provider, served.until));
        self.receipts.push(receipt);
        Ok(())
    }

    /// The receipts billed so far, in the order they were signed (each hop's in
    /// sequence order, as the chain accepts them).
    pub fn into_receipts(self) -> Vec<Receipt> {
        self.receipts
    }
}

/// A whole finished session billed at once (see [`SessionBill`]).
pub fn bill_session(
    client_key: &Keypair,
    node_key: &Keypair,
    epoch: u32,
    served: &[ServedHop],
    hops: &[Vec<Provider>],
) -> anyhow::Result<Vec<Receipt>> {
    let mut bill = SessionBill::new(client_key, node_key, hops, true);
    bill.pay_all(epoch, served)?;
    Ok(bill.into_receipts())
}

#[cfg(test)]
mod tests;
